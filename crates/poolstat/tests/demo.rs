//! `poolstat demo --quick` runs to completion, finds the leaking client from its samples,
//! prints the leak report with the file:line of the leaked allocations, and writes the map.
#![cfg(not(miri))] // Miri runs no child processes and opens no sockets.

use std::os::unix::fs::DirBuilderExt;
use std::process::Command;

#[test]
fn the_quick_demo_names_the_leaking_client_and_writes_a_valid_svg() {
    let dir = std::env::temp_dir().join(format!("poolstat-demo-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::DirBuilder::new().mode(0o700).recursive(true).create(&dir).unwrap();
    let svg_path = dir.join("payloads.svg");
    let output = Command::new(env!("CARGO_BIN_EXE_poolstat"))
        .args(["demo", "--quick", "-o"])
        .arg(&svg_path)
        .env("XDG_RUNTIME_DIR", &dir)
        .output()
        .unwrap();
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(output.status.success(), "{text}\n{}", String::from_utf8_lossy(&output.stderr));

    // Live frames of the table, served and read through the export socket.
    assert_eq!(text.lines().filter(|l| l.starts_with("frame ")).count(), 4, "{text}");
    assert!(text.contains("TOTAL BLKS  USED BLKS  MAX USED"), "{text}");
    for pool in ["broker.iob", "broker.messages", "broker.deliveries", "broker.payloads", "client.dashboard"]
    {
        assert!(text.contains(pool), "{pool} missing:\n{text}");
    }
    assert!(text.contains("client.pager ▲+"), "the leaking sub-pool is marked as growing:\n{text}");

    // The leak hunt names the client whose sub-pool kept growing.
    let hunt = text.lines().find(|l| l.starts_with("Leak hunt:")).expect("a leak hunt line");
    assert!(hunt.contains("sub-pool \"client.pager\" (of broker.deliveries) kept growing"), "{hunt}");

    // The leak report's top call site is the line that allocates the never-released retry
    // tickets in demo.rs.
    let source = include_str!("../src/demo.rs");
    let leak_line = source
        .lines()
        .position(|l| l.contains("let retry = self.acks.force_alloc();"))
        .expect("the leaking line in demo.rs")
        + 1;
    assert!(text.contains("pool \"client.pager.acks\":"), "{text}");
    let expected = format!("come from crates/poolstat/src/demo.rs:{leak_line}:");
    assert!(text.contains(&expected), "expected {expected:?} in\n{text}");

    // The arena map.
    assert!(text.contains("Arena map of broker.payloads (1 arena(s)"), "{text}");
    assert!(text.contains(&svg_path.display().to_string()), "{text}");
    let svg = std::fs::read_to_string(&svg_path).unwrap();
    assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
    assert!(svg.trim_end().ends_with("</svg>"));
    assert!(svg.matches("<rect class=\"used\"").count() > 10, "leaked payloads are drawn");
    assert!(svg.matches("<rect class=\"free\"").count() >= 1);
    assert_eq!(svg.matches("<g").count(), svg.matches("</g>").count());

    // The socket is gone once the demo is over.
    let sockets: Vec<_> = std::fs::read_dir(dir.join("mempools")).unwrap().flatten().collect();
    assert!(sockets.is_empty(), "{sockets:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
