//! The socket side of the security catalogue: topic spelling, replay memory,
//! capacity and fairness limits, floods, heartbeats and names.
