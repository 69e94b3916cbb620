//! rust-embed lists web/dist when the crate compiles; a file added or removed there must
//! rebuild the crate, which cargo does only when told to watch the folder.
fn main() {
    println!("cargo:rerun-if-changed=../../web/dist");
}
