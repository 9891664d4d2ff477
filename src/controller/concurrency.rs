//! One bound on reconciles for the whole process. Each watched namespace has its own Controller,
//! and a Controller's `concurrency` bounds only its own reconciles; `--concurrency` promises a
//! bound on the profiles reconciled at once, so every Controller's reconcile takes a permit from
//! one shared semaphore first.

use std::future::Future;
use std::sync::Arc;

use futures::FutureExt;
use futures::future::BoxFuture;
use kube::runtime::controller::Action;
use tokio::sync::Semaphore;

/// A process-wide limit of `n` reconciles at once; 0 means no limit, as for a Controller.
pub fn limit(n: u16) -> Arc<Semaphore> {
    Arc::new(Semaphore::new(if n == 0 { Semaphore::MAX_PERMITS } else { usize::from(n) }))
}

/// `reconcile`, holding a permit of `limit` while it runs.
pub fn bounded<K, C, E, F, Fut>(
    limit: Arc<Semaphore>,
    mut reconcile: F,
) -> impl FnMut(Arc<K>, Arc<C>) -> BoxFuture<'static, Result<Action, E>>
where
    F: FnMut(Arc<K>, Arc<C>) -> Fut,
    Fut: Future<Output = Result<Action, E>> + Send + 'static,
{
    move |obj, ctx| {
        let limit = limit.clone();
        let work = reconcile(obj, ctx);
        async move {
            // Never closed; if it were, running unbounded would beat not running at all.
            let _permit = limit.acquire_owned().await.ok();
            work.await
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use futures::StreamExt;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::ObjectMeta;
    use kube::runtime::controller::{Config, Controller};
    use kube::runtime::{WatchStreamExt, reflector, watcher};
    use tokio_util::sync::CancellationToken;

    use super::*;

    const PER_CONTROLLER: u16 = 3;
    const OBJECTS: usize = 8;

    #[derive(Default)]
    struct Probe {
        running: AtomicUsize,
        most: AtomicUsize,
        done: AtomicUsize,
        stop: CancellationToken,
    }

    async fn work(_obj: Arc<ConfigMap>, probe: Arc<Probe>) -> Result<Action, Infallible> {
        let now = probe.running.fetch_add(1, Ordering::SeqCst) + 1;
        probe.most.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(100)).await;
        probe.running.fetch_sub(1, Ordering::SeqCst);
        if probe.done.fetch_add(1, Ordering::SeqCst) + 1 == 2 * OBJECTS {
            probe.stop.cancel();
        }
        Ok(Action::await_change())
    }

    /// A Controller of `PER_CONTROLLER` over `OBJECTS` ConfigMaps of `ns`, fed from memory.
    async fn controller<F, Fut>(ns: &'static str, probe: Arc<Probe>, reconcile: F)
    where
        F: FnMut(Arc<ConfigMap>, Arc<Probe>) -> Fut,
        Fut: futures::TryFuture<Ok = Action, Error = Infallible> + Send + 'static,
    {
        let objects = (0..OBJECTS).map(move |i| ConfigMap {
            metadata: ObjectMeta {
                name: Some(format!("cm-{i}")),
                namespace: Some(ns.to_string()),
                ..Default::default()
            },
            ..Default::default()
        });
        let events = std::iter::once(watcher::Event::Init)
            .chain(objects.map(watcher::Event::InitApply))
            .chain(std::iter::once(watcher::Event::InitDone))
            .map(Ok);
        let (reader, writer) = reflector::store();
        let trigger = futures::stream::iter(events).chain(futures::stream::pending()).reflect(writer).applied_objects();
        let stop = probe.stop.clone();
        Controller::for_stream(trigger, reader)
            .with_config(Config::default().concurrency(PER_CONTROLLER))
            .graceful_shutdown_on(async move { stop.cancelled().await })
            .run(reconcile, |_, _, _| Action::await_change(), probe)
            .for_each(|_| async {})
            .await;
    }

    /// The most reconciles seen at once over two Controllers, each with its own concurrency.
    async fn most_at_once(process_limit: Option<u16>) -> usize {
        let probe = Arc::new(Probe::default());
        let run = async {
            match process_limit {
                Some(n) => {
                    let shared = limit(n);
                    futures::join!(
                        controller("a", probe.clone(), bounded(shared.clone(), work)),
                        controller("b", probe.clone(), bounded(shared, work)),
                    );
                }
                None => {
                    futures::join!(controller("a", probe.clone(), work), controller("b", probe.clone(), work));
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(20), run).await.expect("every object reconciled");
        assert_eq!(probe.done.load(Ordering::SeqCst), 2 * OBJECTS);
        probe.most.load(Ordering::SeqCst)
    }

    #[tokio::test]
    async fn per_controller_concurrency_alone_multiplies_with_namespaces() {
        assert_eq!(most_at_once(None).await, 2 * usize::from(PER_CONTROLLER));
    }

    #[tokio::test]
    async fn the_process_limit_holds_across_controllers() {
        assert_eq!(most_at_once(Some(PER_CONTROLLER)).await, usize::from(PER_CONTROLLER));
    }

    #[tokio::test]
    async fn zero_means_unbounded_like_a_controller() {
        assert_eq!(most_at_once(Some(0)).await, 2 * usize::from(PER_CONTROLLER));
    }
}
