//! fuzzing: session (in progress)
