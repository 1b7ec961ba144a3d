//! A source whose behaviour a test scripts: succeed, fail, hang or panic,
//! optionally held at a gate until the test releases it. It counts calls,
//! and each successful call returns positions that say which call made them,
//! so a test can tell a refreshed answer from an old one.

use std::str::FromStr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use positions_api::source::{BoxFuture, Source, SourceError};
use positions_api::{Confidence, Position, Positions, Wallet};
use tokio::sync::watch;

/// What the next calls do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behavior {
    /// Return one position whose `realized_pnl` is the call's number.
    Succeed,
    /// Return an upstream-style error.
    Fail,
    /// Never return (until the loader's timeout cancels the call).
    Hang,
    /// Panic inside the fetch.
    Panic,
}

/// A scripted source.
#[derive(Debug)]
pub struct FakeSource {
    calls: AtomicUsize,
    behavior: Mutex<Behavior>,
    gate: watch::Sender<bool>,
}

impl Default for FakeSource {
    fn default() -> Self {
        Self { calls: AtomicUsize::new(0), behavior: Mutex::new(Behavior::Succeed), gate: watch::channel(true).0 }
    }
}

impl FakeSource {
    /// A source that succeeds, with its gate open.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many times `fetch` has been called.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// Sets what the next calls do.
    ///
    /// # Panics
    ///
    /// If a previous holder of the lock panicked.
    pub fn set(&self, behavior: Behavior) {
        *self.behavior.lock().expect("behaviour lock") = behavior;
    }

    /// Makes calls wait at the gate from now on.
    pub fn hold(&self) {
        self.gate.send_replace(false);
    }

    /// Opens the gate: waiting calls proceed.
    pub fn release(&self) {
        self.gate.send_replace(true);
    }

    /// The positions that call number `call` returns.
    ///
    /// # Panics
    ///
    /// Never: the literals are valid.
    pub fn positions_of_call(call: usize) -> Positions {
        let d = |s: &str| rust_decimal_from(s);
        Positions {
            positions: vec![Position {
                token: "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48".into(),
                symbol: "USDC".into(),
                // More digits than an f64 holds, to show none is lost.
                quantity: d("1520.250000000000000000001"),
                avg_cost: d("0.9998"),
                cost_basis: d("1519.945950"),
                price: Some(d("1.0001")),
                market_value: Some(d("1520.402025")),
                unrealized_pnl: Some(d("0.456075")),
                realized_pnl: d(&call.to_string()),
                confidence: Confidence::High,
                price_updated_at: None,
            }],
            computed_at: None,
        }
    }
}

fn rust_decimal_from(s: &str) -> positions_api::Decimal {
    positions_api::Decimal::from_str(s).expect("valid decimal literal")
}

impl Source for FakeSource {
    fn name(&self) -> &'static str {
        "ledger"
    }

    fn fetch<'a>(&'a self, _wallet: &'a Wallet) -> BoxFuture<'a, Result<Positions, SourceError>> {
        Box::pin(async move {
            let call = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
            let mut gate = self.gate.subscribe();
            // The gate's sender lives as long as the source, so this only
            // ends when the gate opens.
            let _ = gate.wait_for(|open| *open).await;
            let behavior = *self.behavior.lock().expect("behaviour lock");
            match behavior {
                Behavior::Succeed => Ok(Self::positions_of_call(call)),
                Behavior::Fail => Err(SourceError::Status(500)),
                Behavior::Hang => std::future::pending().await,
                Behavior::Panic => panic!("the fake source was told to panic"),
            }
        })
    }
}
