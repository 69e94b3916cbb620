//! Videos on disk that are not a live in progress: the import of an uploaded MP4 or FLV
//! file into the same directory form a finished live leaves (HLS segments, a VOD
//! `index.m3u8`, an indexed `media.flv`).
//!
//! `import` is blocking file I/O, meant for `spawn_blocking`; `uploads` (resumable uploads
//! over tus, which end in an import) is async and runs imports there.

pub mod import;
pub mod uploads;
