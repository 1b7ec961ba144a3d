//! Bytes that are not a readable value are a miss, counted and logged,
//! never an error or a panic; the next store replaces them.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cache_redis::envelope;
use cache_redis::testing::RedisServer;
use deadpool_redis::redis;

use crate::support::{Counts, tier};

#[tokio::test]
async fn undecodable_values_are_misses_and_the_next_store_replaces_them() {
    let server = RedisServer::start();
    let (tier, counts) = tier(&server.url());
    let key = "poscache:positions:v2:{0xabc}";

    let valid = envelope::encode(&vec!["USDC".to_owned()], UNIX_EPOCH + Duration::from_nanos(7)).unwrap();
    let mut wrong_magic = valid.clone();
    wrong_magic[0] ^= 0xff;
    let mut unknown_version = valid.clone();
    unknown_version[4] = 200;
    let mut trailing = valid.clone();
    trailing.push(0);
    let cases: [(&str, Vec<u8>); 6] = [
        ("garbage", b"this is not an envelope".to_vec()),
        ("wrong magic", wrong_magic),
        ("unknown version", unknown_version),
        ("truncated header", valid[..8].to_vec()),
        ("truncated payload", valid[..valid.len() - 1].to_vec()),
        ("trailing bytes", trailing),
    ];
    for (n, (what, bytes)) in cases.into_iter().enumerate() {
        server.set_raw(key, &bytes).await;
        assert_eq!(tier.get::<Vec<String>>("0xabc").await.unwrap(), None, "{what}");
        assert_eq!(Counts::get(&counts.corrupt), n as u64 + 1, "{what} is counted as corrupt");
        assert_eq!(Counts::get(&counts.misses), n as u64 + 1, "{what} is counted as a miss");
    }

    // A value of another type is as unreadable as garbage: here a string
    // whose length runs past the end of the value.
    let wrong_type = envelope::encode(&u64::MAX, SystemTime::now()).unwrap();
    server.set_raw(key, &wrong_type).await;
    assert_eq!(tier.get::<Vec<String>>("0xabc").await.unwrap(), None);
    assert_eq!(Counts::get(&counts.corrupt), 7);

    // An empty string reads as nothing at all (nothing this tier writes is
    // empty): a miss, not corrupt.
    server.set_raw(key, b"").await;
    assert_eq!(tier.get::<Vec<String>>("0xabc").await.unwrap(), None);
    assert_eq!(Counts::get(&counts.corrupt), 7);

    // The valid bytes planted by hand read fine, so the cases above failed
    // for their flaw alone.
    server.set_raw(key, &valid).await;
    let stored = tier.get::<Vec<String>>("0xabc").await.unwrap().expect("valid");
    assert_eq!(stored.fetched_at, UNIX_EPOCH + Duration::from_nanos(7));

    // A store replaces garbage.
    server.set_raw(key, b"garbage again").await;
    tier.set("0xabc", &vec!["WETH".to_owned()], UNIX_EPOCH, Duration::from_secs(60)).await.unwrap();
    let stored = tier.get::<Vec<String>>("0xabc").await.unwrap().expect("replaced");
    assert_eq!(stored.value, ["WETH"]);
    assert_eq!(counts.errors(), 0, "an unreadable value is not a Redis error");
    assert!(tier.is_available());

    // A key of another type entirely (a list): Redis refuses GET with
    // WRONGTYPE, which is an error, and the next store still replaces it.
    let mut connection = server.connection().await;
    let () = redis::cmd("DEL").arg(key).query_async(&mut connection).await.unwrap();
    let _: u64 = redis::cmd("RPUSH").arg(key).arg("x").query_async(&mut connection).await.unwrap();
    assert!(tier.get::<Vec<String>>("0xabc").await.is_err());
    tier.set("0xabc", &vec!["DAI".to_owned()], UNIX_EPOCH, Duration::from_secs(60)).await.unwrap();
    assert_eq!(tier.get::<Vec<String>>("0xabc").await.unwrap().unwrap().value, ["DAI"]);
}
