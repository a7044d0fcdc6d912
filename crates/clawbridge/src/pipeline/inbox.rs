//! Inbound worker: inbox row → policy → agent → outbox.

use super::{Queue, Shared};
use crate::util::{jitter, now_ms, pairing_code};
use clawbridge_channel::Connector;
use clawbridge_core::agent::agent_input;
use clawbridge_core::pairing::{CODE_TTL_MS, MAX_PENDING_PER_ACCOUNT};
use clawbridge_core::policy::AccessDecision;
use clawbridge_core::retry::{RetryDecision, RetryPolicy, SendError};
use clawbridge_core::session::direct_session_key;
use clawbridge_core::time::HOUR_MS;
use clawbridge_core::{IdempotencyKey, InboundMessage, InboundOutcome, OutboundMessage};
use clawbridge_gateway::{AgentRequest, Attachment, ConnectionState, GatewayError, InputProvenance, ProvenanceKind};
use clawbridge_store::{Completed, InboundRow, NewOutbound, PairingOutcome, PairingRequest, StoreError};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Lease on a claimed row; renewed every third of it while the agent works (a slow run is never
/// taken over), so a crash frees the row within half a minute.
const LEASE_MS: i64 = 30_000;
/// How often other processes' work (and retries coming due) is looked for without a wake-up.
const POLL: Duration = Duration::from_millis(1_000);

/// Runs until `stop` fires; in-flight rows keep running in `tracker` (the caller drains it).
///
/// Claims only while the gateway is connected: during an outage messages stay queued
/// (durably) instead of burning their attempts.
pub async fn run(shared: Shared, stop: CancellationToken, tracker: TaskTracker) {
    let gate = Some(shared.gateway.state());
    let concurrency = shared.config.pipeline.concurrency;
    super::drive::<Inbox>(shared, concurrency, POLL, gate, stop, tracker).await;
}

struct Inbox;

impl Queue for Inbox {
    type Row = InboundRow;

    async fn claim(shared: &Shared, limit: u32) -> Result<Vec<InboundRow>, StoreError> {
        shared.store.claim_inbound(&shared.worker, limit, LEASE_MS, now_ms()).await
    }

    async fn handle(shared: Shared, row: InboundRow) {
        let Some(_handling) = shared.in_flight.enter("inbox", row.id) else {
            tracing::warn!(id = row.id, "row re-claimed while it is still being handled here; not run twice");
            return;
        };
        if row.attempts == 1 {
            super::record_queue_wait("inbox", row.received_at);
        }
        // Attempts are counted at claim time, so a message that crashes the process (or loses its
        // lease) every time ends here as a dead letter instead of blocking its lane forever.
        if row.attempts > shared.config.pipeline.max_attempts {
            let reason = format!(
                "claimed {} times without finishing (the process stopped or lost the lease each time)",
                row.attempts - 1
            );
            let connector = shared.registry.connector(&row.message.channel).cloned();
            return give_up(&shared, &row, &reason, connector.as_deref()).await;
        }
        process(&shared, row).await;
    }

    fn span(row: &InboundRow) -> tracing::Span {
        tracing::info_span!("inbound", id = row.id, lane = %row.lane.masked())
    }

    fn wake(shared: &Shared) -> &Notify {
        &shared.wakers.inbox
    }
}

/// Handles one claimed row to a terminal or retry state. Never panics on bad input.
async fn process(shared: &Shared, row: InboundRow) {
    let msg = &row.message;
    let Some(connector) = shared.registry.connector(&msg.channel).cloned() else {
        give_up(shared, &row, &format!("channel {} is not configured", msg.channel), None).await;
        return;
    };
    let Some(account) = shared.registry.account(&msg.channel, &msg.account).cloned() else {
        give_up(shared, &row, &format!("account {}/{} is not configured", msg.channel, msg.account), None).await;
        return;
    };
    if msg.channel.as_str() == clawbridge_whatsapp::inbound::CHANNEL
        && clawbridge_campaign::address::is_opt_out(&msg.text)
    {
        return opt_out(shared, &row).await;
    }
    let policy = account.access_policy();
    let mut decision = policy.decide(msg.peer.as_str(), false);
    if matches!(decision, AccessDecision::Pair | AccessDecision::Deny) {
        // Only senders the static policy does not let through need the approval lookup.
        match shared.store.is_approved(&msg.channel, &msg.account, &msg.peer).await {
            Ok(approved) => decision = policy.decide(msg.peer.as_str(), approved),
            Err(e) => return retry_later(shared, &row, &format!("store: {e}")).await,
        }
    }
    match decision {
        AccessDecision::Allow => crate::tools::remember_peer(&shared.store, &row.lane).await,
        AccessDecision::Ignore => return finish(shared, &row, InboundOutcome::Ignored, &[]).await,
        AccessDecision::Deny => return deny(shared, &row, connector.as_ref()).await,
        AccessDecision::Pair => return pair(shared, &row, connector.as_ref()).await,
    }

    {
        let account = account.clone();
        let msg = msg.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(10), account.agent_started(&msg)).await;
        });
    }

    let request = agent_request(shared, connector.as_ref(), msg);
    let renew = renew_lease(shared, row.id);
    let started = Instant::now();
    let result = tokio::select! {
        result = shared.gateway.run_agent(&request, shared.config.gateway.agent_timeout) => result,
        () = shared.abandon.cancelled() => {
            renew.cancel();
            tracing::warn!("drain deadline reached during the agent run; message handed back to the queue");
            let _ = shared.store.release_inbound(row.id, &shared.worker).await;
            return;
        }
    };
    renew.cancel();
    let took = started.elapsed().as_secs_f64();
    metrics::histogram!("clawbridge_agent_latency_seconds").record(took);
    crate::console::stats::agent_latency(took);

    match result {
        Ok(outcome) if outcome.status == "ok" || outcome.reply.is_some() => {
            let run_key = IdempotencyKey::new(request.idempotency_key.clone());
            let replies: Vec<NewOutbound> = match &outcome.reply {
                Some(text) => connector
                    .render_reply(msg, text)
                    .into_iter()
                    .enumerate()
                    .map(|(i, message)| outbound(IdempotencyKey::for_reply_part(&run_key, i), message, row.id))
                    .collect(),
                None => Vec::new(),
            };
            let outcome_name = if replies.is_empty() { InboundOutcome::Silent } else { InboundOutcome::Replied };
            finish(shared, &row, outcome_name, &replies).await;
        }
        Ok(outcome) => {
            metrics::counter!("clawbridge_agent_errors_total", "kind" => "run").increment(1);
            let reason = format!("agent run failed: {}", outcome.error.unwrap_or(outcome.status));
            give_up(shared, &row, &reason, Some(connector.as_ref())).await;
        }
        Err(GatewayError::Rejected { code, detail_code, message }) => {
            metrics::counter!("clawbridge_agent_errors_total", "kind" => "rejected").increment(1);
            let detail = detail_code.map(|d| format!(" ({d})")).unwrap_or_default();
            give_up(
                shared,
                &row,
                &format!("gateway rejected the run: {code}{detail}: {message}"),
                Some(connector.as_ref()),
            )
            .await;
        }
        Err(e) => {
            metrics::counter!("clawbridge_agent_errors_total", "kind" => "transient").increment(1);
            let connected = matches!(*shared.gateway.state().borrow(), ConnectionState::Connected { .. });
            if connected {
                retry_later(shared, &row, &e.to_string()).await;
            } else {
                // The gateway went away: not this message's fault. Hand it back; it is claimed
                // again when the gateway is back and the same idempotency key resumes the run.
                tracing::warn!(error = %e, "gateway unavailable during the run; message stays queued");
                let _ = shared.store.release_inbound(row.id, &shared.worker).await;
            }
        }
    }
}

fn agent_request(shared: &Shared, connector: &dyn Connector, msg: &InboundMessage) -> AgentRequest {
    let account = shared.registry.is_multi_account(&msg.channel).then_some(&msg.account);
    let session_key = direct_session_key(&shared.config.gateway.agent_id, &msg.channel, account, &msg.peer);
    let limits = shared.gateway.hello();
    let max_image = limits.as_ref().map_or(6_291_456, |h| h.attachments_max_image_bytes);

    let input = agent_input(msg, max_image);
    let attachments = input
        .images
        .into_iter()
        .map(|image| Attachment {
            mime_type: image.mime_type,
            file_name: image.file_name,
            content_base64: image.content_base64,
            size_bytes: image.size_bytes,
        })
        .collect();
    AgentRequest {
        message: input.text,
        session_key,
        idempotency_key: IdempotencyKey::for_inbound(&msg.channel, &msg.account, &msg.message_id).into_string(),
        agent_id: Some(shared.config.gateway.agent_id.clone()),
        extra_system_prompt: Some(connector.agent_context(msg)),
        input_provenance: Some(InputProvenance {
            kind: ProvenanceKind::ExternalUser,
            source_channel: Some(msg.channel.to_string()),
        }),
        attachments,
        label: None,
        timeout_ms: None,
    }
}

fn outbound(key: IdempotencyKey, message: OutboundMessage, inbound_id: i64) -> NewOutbound {
    NewOutbound { idempotency_key: key, message, inbound_id: Some(inbound_id), not_before: None }
}

/// Keeps the row's lease alive while the agent works; cancel the returned token to stop.
fn renew_lease(shared: &Shared, id: i64) -> CancellationToken {
    let (store, worker) = (shared.store.clone(), shared.worker.clone());
    super::keep_lease("inbox", id, LEASE_MS, move || {
        let (store, worker) = (store.clone(), worker.clone());
        async move { store.renew_inbound(id, &worker, LEASE_MS, now_ms()).await }
    })
}

async fn finish(shared: &Shared, row: &InboundRow, outcome: InboundOutcome, replies: &[NewOutbound]) {
    let completed = shared
        .store
        .complete_inbound_and_claim(
            row.id,
            &shared.worker,
            outcome.as_str(),
            replies,
            super::outbox::LEASE_MS,
            now_ms(),
        )
        .await;
    match completed {
        Ok(Completed::Done { first_reply }) => {
            metrics::counter!("clawbridge_inbound_done_total", "outcome" => outcome.as_str()).increment(1);
            crate::console::stats::inbound();
            tracing::info!(outcome = outcome.as_str(), parts = replies.len(), "inbound message handled");
            // The first part was claimed in the same transaction: send it from here, without a
            // hop through the outbox worker. Later parts follow through the outbox in order.
            if let Some(first) = first_reply {
                super::outbox::deliver(shared, *first).await;
            }
            if !replies.is_empty() {
                shared.wakers.outbox.notify_one();
            }
            if let Some(account) = shared.registry.account(&row.message.channel, &row.message.account) {
                account.inbound_finished(&row.message, outcome, replies.len()).await;
            }
        }
        Ok(Completed::LeaseLost) => {
            tracing::warn!("lease lost before completion; another worker finishes this message")
        }
        Err(e) => {
            // Nothing was written: the row's lease runs out and it is handled again, with the
            // same idempotency keys, so no duplicate run or reply results.
            tracing::error!(error = %e, "cannot record the result; the message will be retried");
        }
    }
}

async fn retry_later(shared: &Shared, row: &InboundRow, error: &str) {
    // The `[retry]` schedule, with the agent-run attempts of pipeline.max_attempts.
    let backoff = RetryPolicy { max_attempts: shared.config.pipeline.max_attempts, ..shared.config.retry.queue };
    match backoff.decide(row.attempts, &SendError::transient(error), jitter()) {
        RetryDecision::RetryIn(delay) => {
            tracing::warn!(
                attempt = row.attempts,
                retry_in_ms = delay.as_millis() as u64,
                error,
                "agent run failed; will retry"
            );
            let at = now_ms() + delay.as_millis() as i64;
            if let Err(e) = shared.store.fail_inbound(row.id, &shared.worker, error, Some(at), now_ms()).await {
                tracing::error!(error = %e, "cannot schedule retry");
            }
        }
        RetryDecision::Dead(reason) => {
            let connector = shared.registry.connector(&row.message.channel).cloned();
            give_up(shared, row, &reason, connector.as_deref()).await;
        }
    }
}

/// Marks the row failed (a dead letter) and, when a connector is given, tells the user.
async fn give_up(shared: &Shared, row: &InboundRow, reason: &str, tell_user: Option<&dyn Connector>) {
    tracing::error!(reason, "inbound message given up");
    metrics::counter!("clawbridge_dead_letters_total", "queue" => "inbox").increment(1);
    crate::console::stats::error("agent", format!("{}: {reason}", row.lane.masked()));
    let reply = &shared.config.pipeline.error_reply;
    if let (Some(_), false) = (tell_user, reply.is_empty()) {
        let key = IdempotencyKey::new(format!(
            "{}-error",
            IdempotencyKey::for_inbound(&row.message.channel, &row.message.account, &row.message.message_id)
        ));
        let notice = outbound(key, OutboundMessage::reply_text(&row.message, reply.clone()), row.id);
        if shared.store.enqueue_outbound(&[notice], now_ms()).await.is_ok() {
            shared.wakers.outbox.notify_one();
        }
    }
    if let Err(e) = shared.store.fail_inbound(row.id, &shared.worker, reason, None, now_ms()).await {
        tracing::error!(error = %e, "cannot record the failure");
    }
}

/// A STOP / 수신거부 reply: the number goes on the account's campaign suppression list, the
/// sender is told so, and the agent is not run.
async fn opt_out(shared: &Shared, row: &InboundRow) {
    let msg = &row.message;
    let entry = clawbridge_store::Suppression {
        account: msg.account.to_string(),
        recipient_key: clawbridge_campaign::address::suppression_key(msg.peer.as_str()),
        reason: format!("replied {:?}", msg.text.trim()),
        source: msg.channel.to_string(),
        created_at: now_ms(),
    };
    if let Err(e) = shared.store.suppress(&entry).await {
        return retry_later(shared, row, &format!("store: {e}")).await;
    }
    tracing::info!(peer = %clawbridge_campaign::address::masked(msg.peer.as_str()), "opted out of campaigns");
    metrics::counter!("clawbridge_campaign_opt_outs_total", "channel" => msg.channel.to_string()).increment(1);
    let key = IdempotencyKey::new(format!(
        "{}-optout",
        IdempotencyKey::for_inbound(&msg.channel, &msg.account, &msg.message_id)
    ));
    let text = "수신거부 처리되었습니다. 더 이상 광고 메시지를 보내지 않습니다. / You will not receive marketing messages any more.";
    let reply = outbound(key, OutboundMessage::reply_text(msg, text), row.id);
    finish(shared, row, InboundOutcome::Replied, &[reply]).await;
}

async fn pair(shared: &Shared, row: &InboundRow, connector: &dyn Connector) {
    let msg = &row.message;
    let request = PairingRequest {
        channel: msg.channel.clone(),
        account: msg.account.clone(),
        peer: msg.peer.clone(),
        display_name: msg.sender_name.clone(),
        ttl_ms: CODE_TTL_MS,
        max_pending: MAX_PENDING_PER_ACCOUNT as u32,
    };
    let outcome = match shared.store.request_pairing(&request, &pairing_code(), now_ms()).await {
        Ok(outcome) => outcome,
        Err(e) => return retry_later(shared, row, &format!("store: {e}")).await,
    };
    // The code was committed by `request_pairing` before `finish`: if `finish` fails (or the
    // process stops in between), the retry finds the code pending and must still send it.
    let replies = match &outcome {
        // A retried row (attempts > 1: an earlier claim of it never finished, so nothing it would
        // have enqueued exists) that finds the code pending may be the one that issued it: it
        // sends the notice, under the same key as the first attempt would have.
        PairingOutcome::Issued { code, .. } | PairingOutcome::Pending { code, .. }
            if matches!(outcome, PairingOutcome::Issued { .. }) || row.attempts > 1 =>
        {
            if matches!(outcome, PairingOutcome::Issued { .. }) {
                tracing::info!(channel = %msg.channel, peer = %clawbridge_core::ids::mask(msg.peer.as_str()),
                    "pairing code issued; approve with `clawbridge pairing approve {} {code}`", msg.channel);
            }
            let key = IdempotencyKey::new(format!("pairing-{}-{code}", row.id));
            let mut notice = OutboundMessage::reply_text(msg, connector.pairing_text(code));
            notice.reply_to = None;
            vec![outbound(key, notice, row.id)]
        }
        // The code is sent once per request; repeating it on every message would spam.
        PairingOutcome::Issued { .. } | PairingOutcome::Pending { .. } | PairingOutcome::AlreadyApproved => Vec::new(),
        PairingOutcome::TooMany => {
            tracing::warn!(channel = %msg.channel, account = %msg.account, "too many pending pairing requests; sender not answered");
            Vec::new()
        }
    };
    finish(shared, row, InboundOutcome::Pairing, &replies).await;
}

async fn deny(shared: &Shared, row: &InboundRow, _connector: &dyn Connector) {
    let msg = &row.message;
    let text = &shared.config.pipeline.deny_reply;
    let mut replies = Vec::new();
    if !text.is_empty() {
        let now = now_ms();
        // At most one notice per sender and hour: a refused sender must not be able to make us spam.
        let first =
            shared.store.remember_key("deny-notice", row.lane.as_str(), now + HOUR_MS, now).await.unwrap_or(false);
        // The key is remembered before `finish`: a retried row (an earlier claim never finished,
        // so its notice was never enqueued) sends the notice even though the key is there.
        if first || row.attempts > 1 {
            let key = IdempotencyKey::new(format!("deny-{}", row.id));
            replies.push(outbound(key, OutboundMessage::reply_text(msg, text.clone()), row.id));
        }
    }
    finish(shared, row, InboundOutcome::Denied, &replies).await;
}
