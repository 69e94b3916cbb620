//! Prints the REST API's OpenAPI document, so it can be checked without a running server:
//! `cargo run -p onair --example openapi > openapi.json` (`.ci/run` validates it).

fn main() {
    match onair::api::openapi().to_pretty_json() {
        Ok(json) => println!("{json}"),
        Err(e) => {
            eprintln!("cannot serialise the OpenAPI document: {e}");
            std::process::exit(1);
        }
    }
}
