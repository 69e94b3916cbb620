//! chunk (in progress)
