//! How soon a broken watch is tried again, and how long the Controller pauses its triggers after
//! a watch error. kube-runtime's default for both grows to 30 s plus up to 100 % jitter and does
//! not reset until a watch works again; an apiserver restart (an upgrade, a
//! control-plane node reboot) costs several failed attempts plus a `410 Expired` once it is back,
//! which left profile changes unseen for a minute after the apiserver answered again. A short cap
//! keeps that to seconds; one list every few seconds per watch is nothing for an apiserver that
//! is back, and nothing at all for one that is down.

use std::time::Duration;

use kube::runtime::watcher::ExponentialBackoff;

pub const FIRST: Duration = Duration::from_millis(500);
/// Before jitter, which adds up to as much again.
pub const CAP: Duration = Duration::from_secs(4);

pub fn watch_backoff() -> ExponentialBackoff {
    backon::ExponentialBuilder::default()
        .with_min_delay(FIRST)
        .with_max_delay(CAP)
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::utils::Backoff;

    #[test]
    fn never_gives_up_never_waits_past_twice_the_cap_and_starts_over_on_reset() {
        let mut b = watch_backoff();
        let waits: Vec<Duration> = b.by_ref().take(50).collect();
        assert_eq!(waits.len(), 50, "it keeps retrying");
        assert!(waits.iter().all(|w| *w <= CAP * 2), "{waits:?}");
        assert!(waits[0] <= FIRST * 2, "{waits:?}");
        b.reset();
        assert!(b.next().is_some_and(|w| w <= FIRST * 2));
    }
}
