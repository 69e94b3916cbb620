//! The on-disk form of a video, and videos that were not lives: the import of an uploaded
//! MP4 or FLV file into that form.
//!
//! ```text
//! {recordings_dir}/{channel}/{dir}/
//!     0.ts 1.ts …      HLS segments           written by the recorder (hls/) or import.rs
//!     index.m3u8       the VOD playlist       read by /replays/{id}/, the web player
//!     media.flv        seekable FLV           read by RTMP VOD and progressive HTTP-FLV
//!     thumb.jpg        the thumbnail          made by hls::catalogue from index.m3u8
//!     .media.flv.body  media.flv's tags while a live records (media_flv.rs)
//! ```
//!
//! Everything here is blocking file I/O, meant for `spawn_blocking`, except the `ffmpeg`
//! remux of old replays.

mod flv_source;
pub mod import;
pub mod media_flv;
mod mp4_source;

/// The VOD playlist of a video (and the EVENT playlist of a live being recorded).
pub const PLAYLIST: &str = "index.m3u8";
/// How segment files are named: the media sequence number, so names are digits only.
pub const SEGMENT_PATTERN: &str = "{sequence}.ts";
