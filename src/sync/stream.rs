//! `GET /changes/stream`: the change feed as Server-Sent Events, for a signed-in person.
//!
//! Each event is one feed item (`id:` its cursor, so a reconnect with `Last-Event-ID` goes on
//! exactly after the last event received). A stream reads the feed the way `GET /changes` does —
//! same scope, same audit, same commit order — whenever this instance commits a change
//! (`Db::change_signal`; on SQLite every write is this process's) and every `stream_poll_ms`
//! besides, which is how it sees the commits of other instances on one PostgreSQL. No broker:
//! a poll is two indexed reads. While idle it sends a comment line every `stream_heartbeat_secs`.
//! Every poll checks the session again, so signing out (or being deactivated) ends the stream.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::Stream;

use super::feed::{self, Since};
use super::Position;
use crate::auth::Bearer;
use crate::db::{Db, DbConn};
use crate::error::{AppError, AppResult};

/// The streams open on this instance, per person and in all, within their bounds.
pub struct Streams {
    per_user: usize,
    max: usize,
    open: Mutex<(usize, HashMap<String, usize>)>,
}

impl Streams {
    pub fn new(per_user: usize, max: usize) -> Streams {
        Streams { per_user, max, open: Mutex::new((0, HashMap::new())) }
    }

    /// Takes a place for a stream of `user_id`: 503 when the person's or the instance's are all
    /// taken. The place is given back when the [`Slot`] is dropped (the client went away).
    pub fn open(self: &Arc<Self>, user_id: &str) -> AppResult<Slot> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let mine = open.1.get(user_id).copied().unwrap_or(0);
        if open.0 >= self.max || mine >= self.per_user {
            return Err(AppError::streams_exhausted());
        }
        open.0 += 1;
        open.1.insert(user_id.to_string(), mine + 1);
        Ok(Slot { streams: self.clone(), user_id: user_id.to_string() })
    }

    /// How many streams are open.
    pub fn count(&self) -> usize {
        self.open.lock().unwrap_or_else(|e| e.into_inner()).0
    }
}

/// One open stream's place.
pub struct Slot {
    streams: Arc<Streams>,
    user_id: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.streams.open.lock().unwrap_or_else(|e| e.into_inner());
        open.0 = open.0.saturating_sub(1);
        if let Some(n) = open.1.get_mut(&self.user_id) {
            *n -= 1;
            if *n == 0 {
                open.1.remove(&self.user_id);
            }
        }
    }
}

/// Where a stream starts: after a change cursor, or — without one — at the changes committed
/// from now on (a first sync is `GET /changes`). A snapshot's cursor is 422 naming `field`.
pub fn start(conn: &mut DbConn, since: Since, field: &str) -> AppResult<Position> {
    match since {
        Since::Start => super::latest(conn),
        Since::Changes(p) => Ok(p),
        Since::Snapshot { .. } => Err(AppError::field(
            field,
            "snapshot_cursor",
            "初回同期の途中のカーソルです。GET /changes で同期を終えてから、その next_cursor を指定してください。",
            "This cursor is part of a first sync: finish it with GET /changes, then pass its next_cursor.",
        )),
    }
}

/// The settings of one stream.
pub struct Live {
    pub db: Db,
    pub bearer: Bearer,
    pub cursor: Position,
    pub heartbeat: Duration,
    pub poll: Duration,
    pub slot: Slot,
}

struct State {
    live: Live,
    signal: tokio::sync::watch::Receiver<u64>,
    opened: bool,
}

/// The event stream's body. It ends when the session does.
pub fn events(live: Live) -> impl Stream<Item = Result<Bytes, AppError>> {
    let signal = live.db.change_signal();
    let state = State { live, signal, opened: false };
    futures_util::stream::unfold(state, |mut state| async move {
        let chunk = state.next_chunk().await?;
        Some((Ok(chunk), state))
    })
}

impl State {
    async fn next_chunk(&mut self) -> Option<Bytes> {
        if !self.opened {
            self.opened = true;
            // Tells EventSource clients how soon to reconnect, and sends the headers at once.
            return Some(Bytes::from_static(b"retry: 3000\n: connected\n\n"));
        }
        let idle_until = Instant::now() + self.live.heartbeat;
        loop {
            self.signal.borrow_and_update();
            let (bearer, cursor) = (self.live.bearer.clone(), self.live.cursor);
            let page = self
                .live
                .db
                .read(move |conn| {
                    let me = bearer.user(conn)?;
                    feed::read(conn, &me, Since::Changes(cursor), crate::api::MAX_LIMIT)
                })
                .await;
            match page {
                Ok(page) => {
                    self.live.cursor = page.next;
                    if !page.items.is_empty() {
                        return Some(render(&page.items));
                    }
                    if page.more {
                        continue;
                    }
                }
                Err(e) if e.status().is_client_error() => return None,
                // The database is away for a moment: the stream waits and asks again.
                Err(e) => tracing::warn!(error = %e, "change stream read failed"),
            }
            let now = Instant::now();
            if now >= idle_until {
                return Some(Bytes::from_static(b": heartbeat\n\n"));
            }
            let wait = self.live.poll.min(idle_until - now);
            tokio::select! {
                changed = self.signal.changed() => {
                    if changed.is_err() {
                        tokio::time::sleep(wait).await;
                    }
                }
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
}

fn render(items: &[feed::Item]) -> Bytes {
    let mut out = String::new();
    for item in items {
        let data = serde_json::to_string(item).unwrap_or_default();
        out.push_str(&format!("id: {}\nevent: change\ndata: {data}\n\n", item.cursor));
    }
    Bytes::from(out)
}
