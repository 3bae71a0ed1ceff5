//! The delivery tasks in progress (guide §24.2): a shared registry the queue runner updates
//! and the admin reads.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The phase of a delivery task (guide §24.2 "Status phase"; phases can be skipped).
/// `Resolving` and `Connecting` split the guide's "SMTP delivery" into finer steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskPhase {
    /// The task started.
    Executing,
    /// Looking up MX and address records.
    Resolving,
    /// Opening a connection to a remote server.
    Connecting,
    /// Talking SMTP to a remote server.
    SmtpDelivery,
    /// Delivering a report to a local mailbox.
    LocalDelivery,
    /// Recording results, sending reports, removing the message.
    Terminating,
}

impl TaskPhase {
    /// The guide's wording.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Executing => "Executing",
            Self::Resolving => "Resolving",
            Self::Connecting => "Connecting",
            Self::SmtpDelivery => "SMTP delivery",
            Self::LocalDelivery => "Local delivery",
            Self::Terminating => "Terminating",
        }
    }
}

/// One task in progress (guide §24.2 columns).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeliveryTask {
    /// Queue id.
    pub id: String,
    /// Message size in bytes.
    pub size: u64,
    /// Envelope sender (empty for `<>`).
    pub from: String,
    /// Recipients being attempted.
    pub to: Vec<String>,
    /// Phase.
    pub phase: TaskPhase,
    /// The remote SMTP server during SMTP delivery.
    pub server: Option<String>,
    /// Unix seconds when the task started ("Time" is now minus this).
    pub started: i64,
    /// Percent of the message data sent (0 or 100: the data is written in one go).
    pub percent: u8,
}

/// The shared registry. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct DeliveryTasks {
    inner: Arc<Mutex<BTreeMap<u64, DeliveryTask>>>,
    next: Arc<AtomicU64>,
}

impl DeliveryTasks {
    /// The tasks in progress, oldest first.
    pub fn list(&self) -> Vec<DeliveryTask> {
        match self.inner.lock() {
            Ok(m) => m.values().cloned().collect(),
            Err(p) => p.into_inner().values().cloned().collect(),
        }
    }

    /// Number of tasks in progress.
    pub fn len(&self) -> usize {
        self.list().len()
    }

    /// Whether no task is in progress.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn start(&self, task: DeliveryTask) -> TaskHandle {
        let key = self.next.fetch_add(1, Ordering::Relaxed);
        self.with(|m| {
            m.insert(key, task);
        });
        TaskHandle {
            tasks: self.clone(),
            key,
        }
    }

    fn with(&self, f: impl FnOnce(&mut BTreeMap<u64, DeliveryTask>)) {
        match self.inner.lock() {
            Ok(mut m) => f(&mut m),
            Err(p) => f(&mut p.into_inner()),
        }
    }
}

/// The runner's handle on its registry entry; removes it when dropped.
#[derive(Debug)]
pub(crate) struct TaskHandle {
    tasks: DeliveryTasks,
    key: u64,
}

impl TaskHandle {
    pub(crate) fn phase(&self, phase: TaskPhase, server: Option<&str>) {
        self.tasks.with(|m| {
            if let Some(t) = m.get_mut(&self.key) {
                t.phase = phase;
                t.server = server.map(str::to_owned);
                if phase != TaskPhase::SmtpDelivery {
                    t.percent = 0;
                }
            }
        });
    }

    pub(crate) fn sent(&self) {
        self.tasks.with(|m| {
            if let Some(t) = m.get_mut(&self.key) {
                t.percent = 100;
            }
        });
    }
}

impl Drop for TaskHandle {
    fn drop(&mut self) {
        let key = self.key;
        self.tasks.with(|m| {
            m.remove(&key);
        });
    }
}
