//! A smoke run of the change-feed benchmark (`renkei-bench feed`) against the real server: a
//! nurse's notes read back page by page, and three event streams that each receive every note
//! posted while they are open, beside the in-process peers. The measured run is benches/feed.sh.

use std::time::Duration;

use renkei_bench::feed::{self, Options};

use crate::bench_upload::nurse_manifest;
use crate::helpers::TestApp;

async fn feed_benchmark_runs_clean(app: TestApp) {
    let (_, path) = nurse_manifest(&app, "14134").await;

    let report = feed::drive(&Options {
        url: app.address.clone(),
        manifest: path,
        server_pid: Some(std::process::id()),
        changes: 12,
        page_limit: 5,
        streams: vec![3],
        notes: 2,
        timeout: Duration::from_secs(20),
        with_peer: true,
        verbose: false,
    })
    .await
    .unwrap();

    // Every note came back in the feed (each adds at least its note_added item), over pages of 5.
    let f = &report.feed;
    assert!(f.renkei.items >= 12, "{f:?}");
    assert!(f.renkei.pages >= 3 && f.renkei.pages_per_s > 0.0, "{f:?}");
    let peer = f.peer.as_ref().expect("peer measured");
    assert_eq!((peer.pages, peer.items), (f.renkei.pages, f.renkei.items), "the peer serves the same pages");

    let [r] = &report.fanout[..] else { panic!("{:?}", report.fanout) };
    assert!(r.error_samples.is_empty(), "{:?}", r.error_samples);
    assert_eq!((r.renkei.opened, r.renkei.delivered, r.renkei.missed), (3, 6, 0), "{r:?}");
    let p = r.peer.as_ref().expect("peer measured");
    assert_eq!((p.opened, p.delivered, p.missed), (3, 6, 0), "{p:?}");
    assert!(r.renkei.p50_ms > 0.0 && r.renkei.p99_ms >= r.renkei.p50_ms);
    assert!(r.rss_open_kb.is_some() && r.rss_kb_per_stream.is_some());
    assert!(feed::table(&report).contains("| 3 | 1 | renkei | 3 | 6 | 0 |"), "{}", feed::table(&report));
}

crate::both_backends!(feed_benchmark_runs_clean);
