//! One reconcile pass over one profile: its working copy of status, the Events it publishes and
//! the writes it counts. Every status write and Event of a pass goes through here.
//!
//! A record that must not be lost (a `persist_at_once` outcome: the id of a service principal
//! just created) is *held*: it is written by the next status patch, and that patch must come
//! before the pass does anything but plan. The next wave's intents carry it when that wave has
//! intents and may send them at once; every other path flushes it first, alone: any read
//! (`observe::read`), any Retry-After wait or wave without intents (`execute`), the end of the
//! pass (`apply::finish`, the cleanup's end) and an error (`apply`, which saves what it holds).

use std::sync::Arc;
use std::time::Instant;

use jiff::Timestamp;
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt};

use super::reason::{Kind, Reason};
use super::step::Notice;
use super::writer::StatusWriter;
use super::{Context, Error};
use crate::api::conditions::{self, Desired, types};
use crate::api::{CloudSyncProfile, CloudSyncProfileStatus};

pub struct Pass {
    pub profile: Arc<CloudSyncProfile>,
    pub ctx: Arc<Context>,
    writer: StatusWriter,
    pub started: Instant,
    /// Graph writes made in this pass.
    pub writes: u32,
    /// The working copy holds a record that the next patch must carry before any I/O but that
    /// patch (see the module comment).
    held: bool,
}

impl Pass {
    pub fn new(profile: Arc<CloudSyncProfile>, ctx: Arc<Context>) -> Self {
        let api = Api::namespaced(ctx.kube.clone(), &profile.namespace().unwrap_or_default());
        let writer = StatusWriter::new(api, profile.name_any(), profile.status.as_ref());
        Self { profile, ctx, writer, started: Instant::now(), writes: 0, held: false }
    }

    pub fn namespace(&self) -> String {
        self.profile.namespace().unwrap_or_default()
    }

    pub fn key(&self) -> String {
        super::key(&self.profile)
    }

    pub fn now(&self) -> Timestamp {
        self.ctx.clock.now()
    }

    pub fn status(&self) -> &CloudSyncProfileStatus {
        &self.writer.status
    }

    pub fn status_mut(&mut self) -> &mut CloudSyncProfileStatus {
        &mut self.writer.status
    }

    pub fn patches(&self) -> u32 {
        self.writer.patches
    }

    /// Only the leader writes to Graph or to status; checked right before every write, because a
    /// reconcile can outlive the leadership it started with.
    pub fn ensure_leader(&self) -> Result<(), Error> {
        if self.ctx.leading() { Ok(()) } else { Err(Error::Waiting("this replica is no longer the leader".into())) }
    }

    pub async fn save(&mut self) -> Result<(), Error> {
        self.ensure_leader()?;
        self.writer.save().await.map_err(Error::from)?;
        self.held = false;
        Ok(())
    }

    /// The working copy now holds a record that must be written before anything but planning;
    /// the next wave's intents may carry it (see the module comment).
    pub fn hold(&mut self) {
        self.held = true;
    }

    pub fn holds(&self) -> bool {
        self.held
    }

    /// Writes a held record now, by itself: the pass is about to read, wait, or stop.
    pub async fn flush(&mut self) -> Result<(), Error> {
        if self.held { self.save().await } else { Ok(()) }
    }

    /// Replaces the working copy with the apiserver's status, after writing what it holds.
    pub async fn refresh(&mut self) -> Result<(), Error> {
        self.save().await?;
        self.writer.refresh().await.map_err(Error::from)
    }

    pub async fn event(&self, type_: EventType, reason: Reason, action: &str, note: String) {
        self.ctx.publish(&self.profile, type_, reason, action, note).await;
    }

    pub async fn notify(&self, n: Notice) {
        self.event(n.type_, n.reason, &n.action, n.note).await;
    }

    /// Merges `desired` into the conditions, sets observedGeneration, writes status if anything
    /// changed, and publishes a Warning for each new problem: Ready turning False, or Degraded
    /// turning True, for a reason that needs the user. Repeats of the same problem stay silent.
    pub async fn commit_conditions(&mut self, desired: &[Desired]) -> Result<(), Error> {
        let generation = self.profile.metadata.generation;
        let before = self.writer.status.conditions.clone();
        let now = self.now();
        self.writer.status.conditions = conditions::merge(&before, desired, generation, now);
        self.writer.status.observed_generation = generation;
        self.save().await?;
        for (type_, bad) in [(types::READY, "False"), (types::DEGRADED, "True")] {
            let Some(after) = conditions::find(&self.writer.status.conditions, type_).cloned() else { continue };
            let old = conditions::find(&before, type_);
            let new =
                old.is_none_or(|b| b.status != after.status || b.reason != after.reason || b.message != after.message);
            if let Some(reason) = Reason::from_name(&after.reason).filter(|r| r.kind() == Kind::NeedsUser)
                && after.status == bad
                && new
            {
                self.event(EventType::Warning, reason, "Reconcile", after.message.clone()).await;
            }
        }
        Ok(())
    }
}
