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

/// Whether this process leads; `changes()` wakes on every flip.
pub struct Leadership {
    rx: watch::Receiver<bool>,
    task: Option<JoinHandle<()>>,
}

impl Leadership {
    /// No election: this process always leads.
    pub fn always() -> Self {
        let (_tx, rx) = watch::channel(true);
        Self { rx, task: None }
    }

    /// Campaigns until `release` is cancelled, then gives the lease up.
    pub fn start(client: Client, settings: LeaderSettings, release: CancellationToken) -> Self {
        let (tx, rx) = watch::channel(false);
        let task = tokio::spawn(campaign(client, settings, tx, release));
        Self { rx, task: Some(task) }
    }

    pub fn receiver(&self) -> watch::Receiver<bool> {
        self.rx.clone()
    }

    /// Waits until the lease has been released (after `release` was cancelled).
    pub async fn finished(self) {
        if let Some(t) = self.task {
            let _ = t.await;
        }
    }
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
        let mut events = watcher(api, config).default_backoff().touched_objects().boxed();
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
