//! Container logs of one namespace, kept after their pods are gone: a real kubelet serves
//! the log of a live container only (`kubectl logs`), and a scenario asks what a replaced
//! member printed before it stopped. Every container incarnation (pod uid, container,
//! restart count) is followed through the apiserver's `pods/log` from when it runs.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use futures::{AsyncBufReadExt, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::LogParams;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};

/// One followed container incarnation.
type Key = (String, String, i32);

/// The logs of every container of a namespace since [`LogCollector::start`].
#[derive(Clone, Default)]
pub struct LogCollector {
    /// `(pod name, container)` → every incarnation's lines, in the order they started.
    logs: Arc<Mutex<BTreeMap<(String, String), String>>>,
    task: Option<Arc<tokio::task::AbortHandle>>,
}

impl std::fmt::Debug for LogCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogCollector").finish_non_exhaustive()
    }
}

impl LogCollector {
    /// Follows the logs of every container of `namespace` (on the current runtime).
    pub fn start(client: Client, namespace: &str) -> LogCollector {
        let logs: Arc<Mutex<BTreeMap<(String, String), String>>> = Arc::default();
        let api: Api<Pod> = Api::namespaced(client, namespace);
        let sink = logs.clone();
        let task = tokio::spawn(async move {
            let mut followed: HashSet<Key> = HashSet::new();
            let pods = watcher(api.clone(), watcher::Config::default())
                .default_backoff()
                .applied_objects();
            futures::pin_mut!(pods);
            while let Some(Ok(pod)) = pods.next().await {
                let uid = pod.uid().unwrap_or_default();
                let statuses = pod
                    .status
                    .as_ref()
                    .and_then(|s| s.container_statuses.clone())
                    .unwrap_or_default();
                for cs in statuses {
                    let running = cs.state.as_ref().is_some_and(|s| s.running.is_some());
                    let key = (uid.clone(), cs.name.clone(), cs.restart_count);
                    if running && followed.insert(key) {
                        tokio::spawn(follow(api.clone(), pod.name_any(), cs.name, sink.clone()));
                    }
                }
            }
        });
        LogCollector {
            logs,
            task: Some(Arc::new(task.abort_handle())),
        }
    }

    /// Everything container `container` of pods named `pod` printed (every incarnation).
    pub fn logs(&self, pod: &str, container: &str) -> String {
        self.logs
            .lock()
            .ok()
            .and_then(|l| l.get(&(pod.to_string(), container.to_string())).cloned())
            .unwrap_or_default()
    }
}

impl Drop for LogCollector {
    fn drop(&mut self) {
        if let Some(task) = self.task.take()
            && Arc::strong_count(&task) == 1
        {
            task.abort();
        }
    }
}

async fn follow(
    api: Api<Pod>,
    pod: String,
    container: String,
    sink: Arc<Mutex<BTreeMap<(String, String), String>>>,
) {
    let params = LogParams {
        container: Some(container.clone()),
        follow: true,
        ..LogParams::default()
    };
    let Ok(stream) = api.log_stream(&pod, &params).await else {
        return;
    };
    let mut lines = stream.lines();
    while let Ok(Some(line)) = lines.try_next().await {
        if let Ok(mut l) = sink.lock() {
            let text = l.entry((pod.clone(), container.clone())).or_default();
            text.push_str(&line);
            text.push('\n');
        }
    }
}
