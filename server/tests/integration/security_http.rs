//! The HTTP side of the security catalogue: cross-site requests, headers,
//! cookies, files, /metrics, timeouts and what reaches the logs.
