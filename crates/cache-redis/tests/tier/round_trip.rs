//! What is stored comes back exactly, under the documented key, and goes
//! away when it should.

use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cache_redis::envelope::{MAGIC, VERSION};
use cache_redis::testing::RedisServer;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::support::{Counts, db_size, pttl, tier, wait_until};

const WALLET: &str = "0x52908400098527886e0f7030069857d2e4169ee7";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Position {
    token: String,
    #[serde(with = "rust_decimal::serde::str")]
    quantity: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    avg_cost: Decimal,
    price_updated_at: Option<SystemTime>,
}

fn decimal(text: &str) -> Decimal {
    Decimal::from_str_exact(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn positions() -> Vec<Position> {
    vec![
        Position {
            token: "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48".to_owned(),
            // 21 fractional digits, and trailing zeros that must survive.
            quantity: decimal("1520.250000000000000000001"),
            avg_cost: decimal("0.999800000000000000000000"),
            price_updated_at: Some(UNIX_EPOCH + Duration::new(1_764_000_000, 1)),
        },
        Position {
            token: "So11111111111111111111111111111111111111112".to_owned(),
            // The smallest positive Decimal: 28 fractional digits.
            quantity: decimal("0.0000000000000000000000000001"),
            avg_cost: Decimal::from_str("-79228162514264337593543950335").unwrap(),
            price_updated_at: None,
        },
    ]
}

#[tokio::test]
async fn values_and_fetched_at_round_trip_exactly_under_the_documented_key() {
    let server = RedisServer::start();
    let (tier, counts) = tier(&server.url());
    let fetched_at = UNIX_EPOCH + Duration::new(1_764_000_000, 123_456_789);

    tier.set(WALLET, &positions(), fetched_at, Duration::from_secs(900)).await.unwrap();
    let stored = tier.get::<Vec<Position>>(WALLET).await.unwrap().expect("just stored");
    assert_eq!(stored.value, positions());
    assert_eq!(stored.fetched_at, fetched_at, "to the nanosecond");
    let texts: Vec<String> = stored.value.iter().map(|p| p.quantity.to_string()).collect();
    assert_eq!(texts, ["1520.250000000000000000001", "0.0000000000000000000000000001"]);
    assert_eq!(stored.value[0].avg_cost.to_string(), "0.999800000000000000000000", "scale kept");

    // The key is exactly `poscache:positions:v2:{id}` (the id in braces), and it is the only one.
    let raw =
        server.get_raw(&format!("poscache:positions:v2:{{{WALLET}}}")).await.expect("stored under the documented key");
    assert_eq!(&raw[..4], &MAGIC);
    assert_eq!(raw[4], VERSION);
    assert_eq!(db_size(&server).await, 1);

    // The clock's own precision survives too, and a new store replaces.
    let now = SystemTime::now();
    tier.set(WALLET, &positions()[..1], now, Duration::from_secs(900)).await.unwrap();
    let stored = tier.get::<Vec<Position>>(WALLET).await.unwrap().unwrap();
    assert_eq!((stored.value.as_slice(), stored.fetched_at), (&positions()[..1], now));
    assert_eq!(Counts::get(&counts.hits), 2);
    assert_eq!(counts.errors(), 0);
    assert!(tier.is_up());
}

#[tokio::test]
async fn an_absent_id_is_a_miss_and_an_empty_list_is_a_value() {
    let server = RedisServer::start();
    let (tier, counts) = tier(&server.url());
    assert_eq!(tier.get::<Vec<Position>>("0xnothing").await.unwrap(), None);
    assert_eq!(Counts::get(&counts.misses), 1);

    tier.set("0xempty", &Vec::<Position>::new(), UNIX_EPOCH, Duration::from_secs(60)).await.unwrap();
    let stored = tier.get::<Vec<Position>>("0xempty").await.unwrap().expect("an empty list is stored");
    assert!(stored.value.is_empty());
    assert_eq!(stored.fetched_at, UNIX_EPOCH);
}

#[tokio::test]
async fn entries_expire_after_the_time_given() {
    let server = RedisServer::start();
    let (tier, _) = tier(&server.url());

    tier.set("long", &1_u8, SystemTime::now(), Duration::from_secs(60)).await.unwrap();
    let left = pttl(&server, "poscache:positions:v2:{long}").await;
    assert!((59_000..=60_000).contains(&left), "PTTL {left} ms for a 60 s expiry");

    tier.set("short", &1_u8, SystemTime::now(), Duration::from_millis(30)).await.unwrap();
    let gone = wait_until("a 30 ms entry expires", Duration::from_secs(5), || async {
        tier.get::<u8>("short").await.unwrap().is_none()
    })
    .await;
    println!("FIGURE expiry: a 30 ms entry was gone after {gone:?}");

    // Sub-millisecond expiries are rounded up to 1 ms rather than refused.
    tier.set("tiny", &1_u8, SystemTime::now(), Duration::from_micros(10)).await.unwrap();
}

#[tokio::test]
async fn delete_removes_one_entry_and_says_whether_it_was_there() {
    let server = RedisServer::start();
    let (tier, _) = tier(&server.url());
    tier.set("a", &1_u8, SystemTime::now(), Duration::from_secs(60)).await.unwrap();
    tier.set("ab", &2_u8, SystemTime::now(), Duration::from_secs(60)).await.unwrap();
    assert!(tier.delete("a").await.unwrap());
    assert!(!tier.delete("a").await.unwrap());
    assert_eq!(tier.get::<u8>("ab").await.unwrap().map(|s| s.value), Some(2), "a neighbour survives");
}
