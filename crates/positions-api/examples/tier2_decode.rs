//! What a tier-2 hit costs in this process, before the network: the value
//! Redis returns turned into a servable snapshot. Compares what is stored
//! now (the rendered entry's deflate stream: decode, inflate, check) with
//! what was stored before (the positions: decode, render), for a wallet of
//! ten positions. `cargo run --release -p positions-api --example tier2_decode`

use std::hint::black_box;
use std::str::FromStr;
use std::time::{Instant, SystemTime};

use positions_api::{Confidence, Decimal, Position, Positions, Snapshot, StoredSnapshot, Wallet};
use time::OffsetDateTime;

fn main() {
    let d = |s: &str| Decimal::from_str(s).expect("a decimal");
    let positions = Positions {
        positions: (0..10)
            .map(|i| Position {
                token: format!("0x{:040x}", 0xa0b8_6991_u64 * (i + 7)),
                symbol: format!("TKN{i}"),
                quantity: d(&format!("{}.{:06}", 1000 + i * 137, i * 7919 % 1_000_000)),
                avg_cost: d(&format!("{}.{:04}", 1 + i, i * 31 % 10_000)),
                cost_basis: d(&format!("{}.{:06}", 1519 + i * 11, i * 104_729 % 1_000_000)),
                price: Some(d(&format!("{}.{:04}", 2 + i, i * 17 % 10_000))),
                market_value: Some(d(&format!("{}.{:06}", 2520 + i * 13, i * 65_537 % 1_000_000))),
                unrealized_pnl: Some(d(&format!("{}.{:06}", 100 + i, i * 257 % 1_000_000))),
                realized_pnl: d(&format!("-{}.{:02}", i * 3, i)),
                confidence: Confidence::High,
                price_updated_at: None,
            })
            .collect(),
        computed_at: None,
    };
    let wallet = Wallet::parse("0x52908400098527886e0f7030069857d2e4169ee7").expect("a wallet");
    let at = OffsetDateTime::now_utc();
    let fetched_at = SystemTime::from(at);
    let before = cache_redis::envelope::encode(&positions, fetched_at).expect("encodes");
    let snapshot = Snapshot::render(&wallet, &positions, at);
    let now = cache_redis::envelope::encode(&snapshot.to_stored(), fetched_at).expect("encodes");
    println!("stored bytes: positions {} B, rendered entry {} B", before.len(), now.len());

    let rounds = 20_000;
    for round in 0..3 {
        let started = Instant::now();
        for _ in 0..rounds {
            let stored = cache_redis::envelope::decode::<Positions>(black_box(&before)).expect("decodes");
            black_box(Snapshot::render(&wallet, &stored.value, at));
        }
        let old = started.elapsed() / rounds;
        let started = Instant::now();
        for _ in 0..rounds {
            let stored = cache_redis::envelope::decode::<StoredSnapshot>(black_box(&now)).expect("decodes");
            black_box(Snapshot::from_stored(stored.value).expect("whole"));
        }
        let new = started.elapsed() / rounds;
        println!("round {round}: decode + render (and compress) {old:?}; decode + inflate + check {new:?}");
    }
}
