//! Leader election with a coordination.k8s.io Lease, so that of several replicas only one writes
//! to Graph and to status.
//!
//! kube-lease-manager acquires and renews the lease (server-side apply, clock-skew tolerant). Two
//! additions make hand-over fast: the leader releases the lease when it shuts down, and standbys
//! watch the Lease object. The crate's standby only re-reads a lease it saw held once that lease
//! would have expired, so on its own a released lease would sit free for up to a whole lease
//! duration; a standby that sees the holder cleared builds a fresh manager and takes it at once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

#[derive(Clone, Debug)]
pub struct LeaderSettings {
    pub lease_name: String,
    pub namespace: String,
    /// This replica's name in the lease (the pod name).
    pub identity: String,
    pub duration: Duration,
}

/// Whether this process leads, published by the campaign task on a watch channel. Read it with
/// [`is_leading`]: the channel keeps its last value after the task is gone.
pub struct Leadership {
    rx: watch::Receiver<bool>,
    task: Option<JoinHandle<()>>,
    release: CancellationToken,
    /// Keeps the channel open when no task owns the sender (`always`), so that it does not read
    /// as a dead campaign.
    _sender: Option<watch::Sender<bool>>,
}

/// The campaign task is gone although nobody asked it to release the lease.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    #[error("the leader election task panicked: {0}")]
    Panicked(String),
    #[error("the leader election task stopped without being asked to")]
    Ended,
}

impl Leadership {
    /// No election: this process always leads.
    pub fn always() -> Self {
        let (tx, rx) = watch::channel(true);
        Self { rx, task: None, release: CancellationToken::new(), _sender: Some(tx) }
    }

    /// Campaigns until `release` is cancelled, then gives the lease up.
    pub fn start(client: Client, settings: LeaderSettings, release: CancellationToken) -> Self {
        let (tx, rx) = watch::channel(false);
        let task = tokio::spawn(campaign(client, settings, tx, release.clone()));
        Self::supervising(rx, task, release)
    }

    /// Leadership as published on `rx` by `task`, which owns the sender and is expected to end
    /// only once `release` is cancelled.
    pub fn supervising(rx: watch::Receiver<bool>, task: JoinHandle<()>, release: CancellationToken) -> Self {
        Self { rx, task: Some(task), release, _sender: None }
    }

    pub fn receiver(&self) -> watch::Receiver<bool> {
        self.rx.clone()
    }

    /// Resolves when the campaign task is gone: `Ok` when it was asked to release the lease, an
    /// error when it panicked or ended on its own. Without a task (`always`) it never resolves.
    /// Cancel-safe: dropping it keeps the task supervised.
    pub async fn supervise(&mut self) -> Result<(), LeaderError> {
        let Some(task) = self.task.as_mut() else {
            return std::future::pending().await;
        };
        let outcome = task.await;
        self.task = None;
        match outcome {
            Ok(()) if self.release.is_cancelled() => Ok(()),
            Ok(()) => Err(LeaderError::Ended),
            Err(e) if e.is_panic() => Err(LeaderError::Panicked(panic_message(e.into_panic()))),
            // Aborted: nothing aborts it but the runtime shutting down.
            Err(_) => Err(LeaderError::Ended),
        }
    }

    /// Waits until the lease has been released (after `release` was cancelled).
    pub async fn finished(mut self) {
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

/// True while the campaign task says this process leads. A task that panicked or ended dropped
/// its sender: the channel still holds its last value, but `has_changed` reports it closed, and
/// a replica that cannot renew its lease must not act as leader.
pub fn is_leading(rx: &watch::Receiver<bool>) -> bool {
    rx.has_changed().is_ok() && *rx.borrow()
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".to_string())
}

/// Ticks once each time this process becomes the leader.
pub fn became_leader(rx: watch::Receiver<bool>) -> impl futures::Stream<Item = ()> + Send + 'static {
    futures::stream::unfold(rx, |mut rx| async move {
        loop {
            rx.changed().await.ok()?;
            if *rx.borrow_and_update() {
                return Some(((), rx));
            }
        }
    })
}

async fn build(client: &Client, s: &LeaderSettings) -> Result<LeaseManager, kube_lease_manager::LeaseManagerError> {
    let secs = s.duration.as_secs().max(2);
    LeaseManagerBuilder::new(client.clone(), &s.lease_name)
        .with_namespace(&s.namespace)
        .with_identity(&s.identity)
        .with_duration(secs)
        // Renew a third of the duration before expiry.
        .with_grace((secs / 3).max(1))
        .with_field_manager("cloudsync-operator")
        .build()
        .await
}

/// Notifies when the Lease shows no holder (released by its leader, or never taken).
fn watch_released(client: Client, s: &LeaderSettings, stop: CancellationToken) -> Arc<Notify> {
    let released = Arc::new(Notify::new());
    let notify = released.clone();
    let api: Api<Lease> = Api::namespaced(client, &s.namespace);
    let config = watcher::Config::default().fields(&format!("metadata.name={}", s.lease_name));
    tokio::spawn(async move {
        let mut events =
            watcher(api, config).backoff(crate::controller::watch_backoff::watch_backoff()).touched_objects().boxed();
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                next = events.next() => match next {
                    Some(Ok(lease)) => {
                        let holder = lease.spec.and_then(|s| s.holder_identity).unwrap_or_default();
                        if holder.is_empty() {
                            notify.notify_one();
                        }
                    }
                    Some(Err(e)) => warn!(error = %e, "watching the leader lease"),
                    None => return,
                }
            }
        }
    });
    released
}

async fn campaign(client: Client, s: LeaderSettings, tx: watch::Sender<bool>, release: CancellationToken) {
    let released = watch_released(client.clone(), &s, release.clone());
    let leases: Api<Lease> = Api::namespaced(client.clone(), &s.namespace);
    let check_every = (s.duration / 3).max(Duration::from_secs(1));
    'outer: loop {
        let manager = match build(&client, &s).await {
            Ok(m) => m,
            Err(e) => {
                warn!(error = %e, lease = %s.lease_name, "cannot set up the leader lease; retrying");
                tokio::select! {
                    _ = release.cancelled() => break 'outer,
                    _ = tokio::time::sleep(Duration::from_secs(2)) => continue,
                }
            }
        };
        // Kept across iterations: cancelling it mid-renewal would be wasteful, not wrong.
        let mut changed = Box::pin(manager.changed());
        let mut confirmed = Instant::now();
        loop {
            let leading = *tx.borrow();
            tokio::select! {
                biased;
                _ = release.cancelled() => {
                    drop(changed);
                    if leading && let Err(e) = manager.release().await {
                        warn!(error = %e, "cannot release the leader lease; the next leader waits for it to expire");
                    }
                    break 'outer;
                }
                result = &mut changed => match result {
                    Ok(now) => {
                        info!(leader = now, identity = %s.identity, lease = %s.lease_name, "leadership changed");
                        confirmed = Instant::now();
                        tx.send_replace(now);
                        changed = Box::pin(manager.changed());
                    }
                    Err(e) => {
                        // Unable to renew: stop acting as leader before the lease may pass on.
                        warn!(error = %e, "leader lease error; stepping down and retrying");
                        tx.send_replace(false);
                        tokio::select! {
                            _ = release.cancelled() => break 'outer,
                            _ = tokio::time::sleep(Duration::from_secs(1)) => continue 'outer,
                        }
                    }
                },
                // The leader checks that the lease is still its own: a renewal that hangs must not
                // let it act after the lease could have passed to another replica.
                _ = tokio::time::sleep(check_every), if leading => {
                    match tokio::time::timeout(check_every, leases.get_opt(&s.lease_name)).await {
                        Ok(Ok(lease)) => {
                            let holder = lease.and_then(|l| l.spec).and_then(|sp| sp.holder_identity).unwrap_or_default();
                            if holder == s.identity {
                                confirmed = Instant::now();
                            } else {
                                warn!(holder = %holder, "the leader lease is held by another replica; stepping down");
                                tx.send_replace(false);
                                continue 'outer;
                            }
                        }
                        Ok(Err(e)) => warn!(error = %e, "cannot read the leader lease"),
                        Err(_) => warn!("reading the leader lease timed out"),
                    }
                    if confirmed.elapsed() > s.duration * 2 / 3 {
                        warn!("the leader lease could not be confirmed in time; stepping down");
                        tx.send_replace(false);
                        continue 'outer;
                    }
                }
                _ = released.notified(), if !leading => continue 'outer,
            }
        }
    }
    tx.send_replace(false);
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::sync::{oneshot, watch};
    use tokio_util::sync::CancellationToken;

    use super::*;

    /// A campaign stand-in that reports leading, then does `then` when told to.
    fn leading_task(then: fn(watch::Sender<bool>)) -> (Leadership, oneshot::Sender<()>, CancellationToken) {
        let (tx, rx) = watch::channel(false);
        let (go, wait) = oneshot::channel::<()>();
        let release = CancellationToken::new();
        let task = tokio::spawn(async move {
            tx.send_replace(true);
            let _ = wait.await;
            then(tx);
        });
        (Leadership::supervising(rx, task, release.clone()), go, release)
    }

    async fn wait_leading(rx: &watch::Receiver<bool>) {
        tokio::time::timeout(Duration::from_secs(5), async {
            while !is_leading(rx) {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("the task reports leading");
    }

    #[tokio::test]
    async fn a_panicked_campaign_stops_leading_and_the_supervisor_fails() {
        let (mut leadership, go, _release) = leading_task(|_tx| panic!("injected campaign failure"));
        let rx = leadership.receiver();
        wait_leading(&rx).await;
        let _ = go.send(());
        let outcome = tokio::time::timeout(Duration::from_secs(5), leadership.supervise()).await.expect("resolves");
        match outcome {
            Err(LeaderError::Panicked(msg)) => assert!(msg.contains("injected campaign failure"), "{msg}"),
            other => panic!("expected a panic report, got {other:?}"),
        }
        assert!(*rx.borrow(), "the channel still holds the last value...");
        assert!(!is_leading(&rx), "...but a dead campaign does not lead");
    }

    #[tokio::test]
    async fn a_campaign_that_ends_unasked_is_an_error() {
        let (mut leadership, go, _release) = leading_task(drop);
        let rx = leadership.receiver();
        wait_leading(&rx).await;
        let _ = go.send(());
        let outcome = tokio::time::timeout(Duration::from_secs(5), leadership.supervise()).await.expect("resolves");
        assert!(matches!(outcome, Err(LeaderError::Ended)), "{outcome:?}");
        assert!(!is_leading(&rx));
    }

    #[tokio::test]
    async fn a_released_campaign_ends_cleanly() {
        let (mut leadership, go, release) = leading_task(|tx| {
            tx.send_replace(false);
        });
        wait_leading(&leadership.receiver()).await;
        release.cancel();
        let _ = go.send(());
        let outcome = tokio::time::timeout(Duration::from_secs(5), leadership.supervise()).await.expect("resolves");
        assert!(outcome.is_ok(), "{outcome:?}");
    }

    #[tokio::test]
    async fn without_election_the_process_leads_and_nothing_is_supervised() {
        let mut leadership = Leadership::always();
        assert!(is_leading(&leadership.receiver()));
        assert!(
            tokio::time::timeout(Duration::from_millis(100), leadership.supervise()).await.is_err(),
            "no task: the supervisor never resolves"
        );
        assert!(is_leading(&leadership.receiver()));
    }
}
