//! A program fed on its stdin: the CLIs that tests and benches compare against read their rules
//! there (`ipset restore`, `ipvsadm -R`).

use std::io::Write as _;
use std::process::{Command, Stdio};

/// Runs `program` with `args`, writing `stdin` (when given; else it reads end-of-file) to it; panics
/// with its stderr unless it succeeds; its stdout.
///
/// The input is written from a second thread while the output is read, so a child that
/// answers before it has read everything cannot deadlock against us.
pub fn run(program: &str, args: &[&str], stdin: Option<&str>) -> String {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    // Without input the pipe closes at once: the child reads end-of-file.
    let pipe = child.stdin.take();
    let out = std::thread::scope(|s| {
        if let (Some(text), Some(mut pipe)) = (stdin, pipe) {
            s.spawn(move || {
                pipe.write_all(text.as_bytes())
                    .unwrap_or_else(|e| panic!("{program}: writing its stdin: {e}"));
            });
        }
        child.wait_with_output()
    })
    .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
