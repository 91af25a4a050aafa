//! The voice control plane: muting enforced by the SFU, leaving for good, peer
//! caps, and bad datagrams.
