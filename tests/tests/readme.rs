//! The README's curl walk-through, run as written against a real server, so the README cannot
//! drift from the server again.
//!
//! The test takes the ```` ```sh ```` block that follows "A walk-through with curl and jq" from
//! `README.md` and runs every command of it, in order, in one `bash` (`set -u -o pipefail`),
//! against a fresh in-process server on SQLite that has done its first start (the admin and
//! the `demo` channel, as `onair` creates them before it starts listening). Before running it
//! replaces, in the commands:
//!
//! | README | becomes |
//! | --- | --- |
//! | `PASSWORD` | the admin's password from the first start |
//! | `127.0.0.1:8080` | the server's HTTP address (port 0 on loopback) |
//!
//! and, in the outputs shown, `rtmp://127.0.0.1/live` (RTMP's default port) with the server's
//! RTMP URL. What a command prints must match what the README shows for it: the comment lines
//! right under it (no blank line between), or a comment at the end of its last line. In a
//! shown output `…` stands for anything and white space outside JSON strings does not count,
//! so `{"id": …, "live": false}` matches the server's compact `{"id":2,"live":false}`. A
//! command with nothing shown must print nothing (an assignment, say), and every command must
//! exit with status 0. Comment lines after a blank line are the README's prose.
//!
//! Needs `bash`, `curl` and `jq`: without them a developer's machine prints `skipped: curl
//! missing`; under `CI=true` the test fails.

use std::time::Duration;

use onair_e2e::{TestServer, require_program};

/// The sentence the walk-through's block follows.
const HEADING: &str = "A walk-through with curl and jq";

/// A marker line no command prints: the output of each command ends at one.
const MARK: char = '\u{1e}';

/// The whole walk-through takes a few seconds (two password hashes in a debug build).
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// One command of the block and what the README shows it printing.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Step {
    /// The README line the command starts on (1-based), for messages.
    line: usize,
    /// The command as written, continuation lines included, its trailing comment not.
    command: String,
    /// What it prints, as shown; `None` when nothing is shown.
    shows: Option<String>,
}

/// The walk-through block of `readme` and the number of its first line.
fn walk_through_block(readme: &str) -> (usize, Vec<&str>) {
    let lines: Vec<&str> = readme.lines().collect();
    let heading = lines
        .iter()
        .position(|l| l.contains(HEADING))
        .unwrap_or_else(|| panic!("README.md has no {HEADING:?}"));
    let open = heading
        + lines[heading..]
            .iter()
            .position(|l| l.trim_end() == "```sh")
            .unwrap_or_else(|| panic!("no ```sh block after {HEADING:?}"));
    let len = lines[open + 1..]
        .iter()
        .position(|l| l.trim_end() == "```")
        .expect("the walk-through block is closed");
    (open + 2, lines[open + 1..open + 1 + len].to_vec())
}

/// Splits a block into commands and what each is shown printing.
fn steps(first_line: usize, block: &[&str]) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    // Whether comment lines here belong to the last command (no blank line since it ended).
    let mut attached = false;
    let mut continuing = false;
    for (i, line) in block.iter().enumerate() {
        if continuing {
            let step = steps.last_mut().expect("a continuation follows a command");
            continuing = push_command_line(step, line);
            attached = !continuing;
            continue;
        }
        let trimmed = line.trim();
        if trimmed.is_empty() {
            attached = false;
        } else if let Some(comment) = trimmed.strip_prefix('#') {
            if attached {
                let step = steps.last_mut().expect("attached to a command");
                let shown = step.shows.get_or_insert_with(String::new);
                shown.push_str(comment.trim());
                shown.push('\n');
            }
        } else {
            steps.push(Step {
                line: first_line + i,
                command: String::new(),
                shows: None,
            });
            let step = steps.last_mut().expect("just pushed");
            continuing = push_command_line(step, line);
            attached = !continuing;
        }
    }
    assert!(!continuing, "the block ends inside a command");
    steps
}

/// Adds one line to `step`'s command; a comment at the end of it is the output shown. Returns
/// whether the command goes on to the next line.
fn push_command_line(step: &mut Step, line: &str) -> bool {
    let (code, comment) = split_comment(line);
    if let Some(comment) = comment {
        step.shows = Some(comment.to_owned());
    }
    let code = code.trim_end();
    if !step.command.is_empty() {
        step.command.push('\n');
    }
    step.command.push_str(code);
    code.ends_with('\\')
}

/// `line` without its trailing comment (a `#` after white space, outside quotes), and the
/// comment's text.
fn split_comment(line: &str) -> (&str, Option<&str>) {
    let (mut single, mut double, mut escaped) = (false, false, false);
    let mut previous = ' ';
    for (at, c) in line.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if !single => escaped = true,
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            '#' if !single && !double && previous.is_whitespace() => {
                return (&line[..at], Some(line[at + 1..].trim()));
            }
            _ => {}
        }
        previous = c;
    }
    (line, None)
}

/// `text` without white space outside JSON strings.
fn squeeze(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in text.chars() {
        if in_string {
            out.push(c);
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !c.is_whitespace() {
            out.push(c);
        }
    }
    out
}

/// Whether `printed` is what `shown` shows: equal once squeezed, with `…` matching anything.
/// A `…` standing for members of an object or a list (`, …,`) also matches none.
fn matches(shown: &str, printed: &str) -> bool {
    let shown = squeeze(shown).replace(",…,", ",…");
    let printed = squeeze(printed);
    let mut pieces = shown.split('…');
    let first = pieces.next().unwrap_or_default();
    let Some(mut rest) = printed.strip_prefix(first) else {
        return false;
    };
    let pieces: Vec<&str> = pieces.collect();
    let Some((last, middle)) = pieces.split_last() else {
        return rest.is_empty();
    };
    for piece in middle {
        match rest.find(piece) {
            Some(at) => rest = &rest[at + piece.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

/// The script that runs `steps` in order and marks where each one's output ends, with its
/// exit status.
fn script(steps: &[Step]) -> String {
    let mut script = String::from("set -u -o pipefail\n");
    for (n, step) in steps.iter().enumerate() {
        script.push_str(&step.command);
        script.push('\n');
        script.push_str(&format!("printf '\\n\\036%s %s\\n' {n} \"$?\"\n"));
    }
    script
}

/// Each command's exit status and output, from the script's stdout.
fn outputs(stdout: &str) -> Vec<(i32, String)> {
    let mut out = Vec::new();
    let mut rest = stdout;
    let mark = format!("\n{MARK}");
    while let Some(at) = rest.find(&mark) {
        let printed = rest[..at].trim_end_matches('\n').to_owned();
        let after = &rest[at + mark.len()..];
        let (header, tail) = after.split_once('\n').unwrap_or((after, ""));
        let status = header
            .split_once(' ')
            .and_then(|(_, s)| s.parse().ok())
            .unwrap_or(-1);
        out.push((status, printed));
        rest = tail;
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_walk_through_runs_as_written() {
    // Check all three so the skip line names every missing tool.
    let tools = [
        require_program("bash", "--version"),
        require_program("curl", "--version"),
        require_program("jq", "--version"),
    ];
    if tools.iter().any(Option::is_none) {
        return;
    }
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("reading README.md");
    let (first_line, block) = walk_through_block(&readme);
    let text = block.join("\n");
    for placeholder in ["PASSWORD", "127.0.0.1:8080", "rtmp://127.0.0.1/live"] {
        assert!(
            text.contains(placeholder),
            "the walk-through no longer has {placeholder:?}: update this test's replacements"
        );
    }

    // The issued key's `rtmp_url` names the configured RTMP port, not the bound one, so the
    // listener gets a real port here rather than port 0 (which it would advertise as `:0`).
    let rtmp_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|probe| probe.local_addr())
        .expect("probing for a free port")
        .port();
    let server = TestServer::start(|config| {
        config.rtmp.listen = std::net::SocketAddr::from(([127, 0, 0, 1], rtmp_port));
    })
    .await;
    let first_start = server
        .platform()
        .bootstrap()
        .await
        .expect("the first-start set-up")
        .expect("a fresh database gets an admin");
    let rtmp_url = format!(
        "rtmp://127.0.0.1:{}/{}",
        server.rtmp_addr.port(),
        server.state().config.rtmp.app
    );
    let steps: Vec<Step> = steps(first_line, &block)
        .into_iter()
        .map(|step| Step {
            command: step
                .command
                .replace("PASSWORD", first_start.password.expose())
                .replace("127.0.0.1:8080", &server.http_addr.to_string()),
            shows: step
                .shows
                .map(|s| s.replace("rtmp://127.0.0.1/live", &rtmp_url)),
            ..step
        })
        .collect();
    assert!(steps.len() >= 20, "only {} commands found", steps.len());

    let mut bash = tokio::process::Command::new("bash");
    bash.arg("-c")
        .arg(script(&steps))
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    // The requests go to loopback; a proxy from the environment must not see them.
    for proxy in [
        "http_proxy",
        "HTTP_PROXY",
        "https_proxy",
        "HTTPS_PROXY",
        "all_proxy",
        "ALL_PROXY",
    ] {
        bash.env_remove(proxy);
    }
    let run = tokio::time::timeout(RUN_TIMEOUT, bash.output())
        .await
        .expect("the walk-through finishes in time")
        .expect("running bash");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    let outputs = outputs(&stdout);

    let mut failures = Vec::new();
    for (step, (status, printed)) in steps.iter().zip(&outputs) {
        let shown = step.shows.as_deref().unwrap_or_default();
        if *status != 0 || !matches(shown, printed) {
            failures.push(format!(
                "README.md line {}: {}\n  exit status {status}\n  shows:   {}\n  printed: {printed}",
                step.line,
                step.command,
                shown.trim_end().replace('\n', "\n           "),
            ));
        }
    }
    if outputs.len() < steps.len() {
        failures.push(format!(
            "the walk-through stopped after {} of {} commands",
            outputs.len(),
            steps.len()
        ));
    }
    assert!(
        failures.is_empty(),
        "the README's walk-through and the server disagree:\n{}\nbash's stderr:\n{stderr}",
        failures.join("\n")
    );
    server.shutdown().await;
}

#[test]
fn outputs_shown_under_a_command_or_after_it_and_prose_after_a_blank_line() {
    let block = [
        "A=1",
        "",
        "# Prose.",
        "curl -s x \\",
        "  -d '{\"a\": \"#1\"}'",
        "# {\"a\": 1,",
        "#  \"b\": 2}",
        "curl -s -w '%{http_code}' y  # 204",
        "B=$(echo '# not a comment')",
    ];
    let found = steps(10, &block);
    let shown: Vec<(usize, &str, Option<&str>)> = found
        .iter()
        .map(|s| (s.line, s.command.as_str(), s.shows.as_deref()))
        .collect();
    assert_eq!(
        shown,
        [
            (10, "A=1", None),
            (
                13,
                "curl -s x \\\n  -d '{\"a\": \"#1\"}'",
                Some("{\"a\": 1,\n\"b\": 2}\n")
            ),
            (17, "curl -s -w '%{http_code}' y", Some("204")),
            (18, "B=$(echo '# not a comment')", None),
        ]
    );
}

#[test]
fn shown_outputs_match_with_ellipses_and_any_spacing() {
    let printed = r#"{"jti":"4f1c","channel_id":2,"label":"OBS at home","revoked_at":null}"#;
    assert!(matches(
        r#"{"jti": "…", "channel_id": 2, …, "revoked_at": null}"#,
        printed
    ));
    assert!(matches(
        r#"{"jti": "…", "channel_id": 2, "label": "OBS at home", …, "revoked_at": null}"#,
        printed
    ));
    assert!(matches("204", "204"));
    assert!(matches("", ""));
    assert!(!matches("204", "409"));
    assert!(!matches("", "something"));
    assert!(!matches(r#"{"label": "OBS athome", …}"#, printed));
    assert!(!matches(r#"{"jti": "…", "channel_id": 3, …}"#, printed));
    assert!(!matches(r#"{"jti": "…"}"#, printed));
}

#[test]
fn the_script_marks_each_commands_end_and_status() {
    let marked = format!("hello\n{MARK}0 0\n\n{MARK}1 0\nx\n{MARK}2 7\n");
    assert_eq!(
        outputs(&marked),
        [(0, "hello".into()), (0, String::new()), (7, "x".into())]
    );
}
