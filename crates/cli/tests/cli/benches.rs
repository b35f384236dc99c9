//! `agora bench console` end to end on a small world: it grows the world, serves
//! the console and requests every page, and prints each page's figures with the
//! largest p99 on its last line.

use super::{agora, stdout};

#[test]
fn console_bench_prints_every_page_and_the_worst_p99_last() {
    let dir = tempfile::tempdir().unwrap();
    let o = agora(
        dir.path(),
        &[
            "bench", "console", "--agents", "300", "--cycles", "60", "--rounds", "3", "--warmup",
            "1",
        ],
    );
    let text = stdout(&o);
    assert!(
        o.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(text.contains("audit=clean"), "{text}");
    for page in [
        "attention",
        "agents",
        "agents_by_balance",
        "agents_deep_page",
        "agent_busy",
        "agent_lineage_root",
        "execution",
        "market",
        "economy",
    ] {
        assert!(
            text.contains(&format!("console_{page}_p50_ms=")),
            "no figure for {page}: {text}"
        );
    }
    let mut lines = text.lines().rev();
    let last = lines.next().unwrap();
    let ms: f64 = last
        .strip_prefix("console_pages_p99_max_ms=")
        .unwrap()
        .parse()
        .unwrap();
    assert!(ms > 0.0);
    assert!(lines.next().unwrap().starts_with("console_slowest_page="));
}
