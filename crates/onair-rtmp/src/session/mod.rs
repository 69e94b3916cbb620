//! sessions (in progress)
