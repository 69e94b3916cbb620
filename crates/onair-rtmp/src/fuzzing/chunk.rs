//! fuzzing: chunk (in progress)
