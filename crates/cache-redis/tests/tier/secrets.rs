//! The Redis password never shows: not in `Debug` or `Display` output, not
//! in errors, not in the redacted URL, not in the logs.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use cache_redis::testing::RedisServer;
use cache_redis::{BreakerState, Config, RedisTier};

use crate::support::{tier, wait_until};

/// Everything the tracing subscriber writes, shared with the test.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

fn assert_hidden(what: &str, text: &str) {
    for secret in ["hunter2", "wrongpass"] {
        assert!(!text.contains(secret), "{what} shows {secret:?}: {text}");
    }
}

// A current-thread runtime, so that the tier's prober and the client's
// tasks log on this thread, where the capturing subscriber is the default.
#[tokio::test(flavor = "current_thread")]
async fn the_password_stays_out_of_output_errors_and_logs() {
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer({
            let logs = logs.clone();
            move || logs.clone()
        })
        .with_ansi(false)
        .finish();
    let _default = tracing::subscriber::set_default(subscriber);

    let mut server = RedisServer::start_with_password("hunter2");
    let socket = server.socket();
    let socket = socket.display();

    // The right password works, and shows nowhere.
    let (good, _) = tier(&server.url());
    good.set("0xabc", &1_u8, SystemTime::now(), Duration::from_secs(60)).await.unwrap();
    assert_eq!(good.get::<u8>("0xabc").await.unwrap().unwrap().value, 1);
    assert_eq!(good.redacted_url(), format!("redis+unix://{socket}?pass=***"));
    assert_hidden("Debug of the tier", &format!("{good:?}"));
    assert_hidden("Debug of the config", &format!("{:?}", Config::new(server.url())));

    // A wrong one fails on every call, and every error hides it.
    let (wrong, _) = tier(&format!("redis+unix://{socket}?db=0&user=default&pass=wrongpass"));
    let error = wrong.get::<u8>("0xabc").await.unwrap_err();
    assert!(error.is_unavailability(), "{error}");
    assert_hidden("a wrong password's error", &format!("{error} {error:?}"));
    while wrong.state() == BreakerState::Closed {
        let error = wrong.ping().await.unwrap_err();
        assert_hidden("a wrong password's error", &format!("{error} {error:?}"));
    }

    // A malformed URL's error hides it too.
    let error = RedisTier::new(Config::new("redis://:hunter2@127.0.0.1:notaport")).unwrap_err();
    assert_hidden("an invalid URL's error", &format!("{error} {error:?}"));

    // So do a dead server's errors, through the breaker opening.
    server.kill();
    while good.state() == BreakerState::Closed {
        let error = good.get::<u8>("0xabc").await.unwrap_err();
        assert_hidden("a dead server's error", &format!("{error} {error:?}"));
    }
    let logs_say_open = || {
        let text = logs.text();
        async move { text.contains("circuit breaker open") }
    };
    wait_until("the breaker's opening is logged", Duration::from_secs(5), logs_say_open).await;

    let text = logs.text();
    assert!(text.contains(&format!("redis+unix://{socket}?pass=***")), "the logs name the server, redacted: {text}");
    assert_hidden("the logs", &text);
}
