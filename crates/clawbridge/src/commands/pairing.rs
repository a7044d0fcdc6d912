//! `clawbridge pairing list|approve|revoke`.

use crate::cli::PairingAction;
use crate::config::Config;
use crate::util::{format_epoch_ms, now_ms};
use clawbridge_core::ids::mask;
use clawbridge_core::pairing::{is_well_formed, normalize_code};
use clawbridge_core::policy::normalize_peer;
use clawbridge_core::{AccountId, ChannelId, IdempotencyKey, OutboundMessage, PeerId};
use clawbridge_store::{ApprovedPeer, NewOutbound};
use std::process::ExitCode;

/// Runs a pairing action against the store (the daemon need not run; it picks up the change).
///
/// # Errors
/// When the store cannot be opened or written.
pub async fn run(config: &Config, action: PairingAction) -> anyhow::Result<ExitCode> {
    let store = clawbridge_store::open(&config.bridge.database_url).await?;
    let now = now_ms();
    match action {
        PairingAction::List { channel } => {
            let channel = channel.map(ChannelId::new);
            let pending = store.list_pairings(channel.as_ref(), now).await?;
            let approved = store.list_approved(channel.as_ref()).await?;
            if pending.is_empty() {
                println!("pending: none");
            } else {
                println!("pending (approve with `clawbridge pairing approve CHANNEL CODE`):");
                for p in &pending {
                    println!(
                        "  {}  {}/{} {}{}  expires {}",
                        p.code,
                        p.channel,
                        p.account,
                        p.peer,
                        p.display_name.as_ref().map(|n| format!(" ({n})")).unwrap_or_default(),
                        format_epoch_ms(p.expires_at)
                    );
                }
            }
            if approved.is_empty() {
                println!("approved: none");
            } else {
                println!("approved:");
                for a in &approved {
                    println!(
                        "  {}/{} {}{}  since {}",
                        a.channel,
                        a.account,
                        a.peer,
                        a.display_name.as_ref().map(|n| format!(" ({n})")).unwrap_or_default(),
                        format_epoch_ms(a.approved_at)
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        PairingAction::Approve { channel, code, no_notify } => {
            let code = normalize_code(&code);
            if !is_well_formed(&code) {
                eprintln!("error: {code:?} is not a pairing code (8 characters, letters and digits 2-9)");
                return Ok(ExitCode::FAILURE);
            }
            let channel = ChannelId::new(channel);
            let Some(peer) = store.approve_pairing(&channel, &code, now).await? else {
                eprintln!(
                    "error: no pending request with code {code} on channel {channel}; codes expire after 1 hour \
                     (`clawbridge pairing list` shows the pending ones)"
                );
                return Ok(ExitCode::FAILURE);
            };
            println!("approved {}/{} {}", peer.channel, peer.account, mask(peer.peer.as_str()));
            if !no_notify && let Some(notice) = approved_notice(config, &peer, &code) {
                store.enqueue_outbound(&[notice], now).await?;
                println!("the sender is told once the daemon sends the queued confirmation");
            }
            Ok(ExitCode::SUCCESS)
        }
        PairingAction::Revoke { channel, peer, account } => {
            let (channel, account, peer) =
                (ChannelId::new(channel), AccountId::new(account), PeerId::new(normalize_peer(&peer)));
            if store.revoke_peer(&channel, &account, &peer).await? {
                println!("revoked {channel}/{account} {}", mask(peer.as_str()));
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!(
                    "error: {channel}/{account} {peer} was not approved (`clawbridge pairing list` shows who is)"
                );
                Ok(ExitCode::FAILURE)
            }
        }
    }
}

/// The confirmation an approved sender gets (`pipeline.approved_reply`), keyed by the code so
/// that approving twice queues it once; `None` when the reply is set empty.
pub(crate) fn approved_notice(config: &Config, peer: &ApprovedPeer, code: &str) -> Option<NewOutbound> {
    if config.pipeline.approved_reply.is_empty() {
        return None;
    }
    let message = OutboundMessage {
        channel: peer.channel.clone(),
        account: peer.account.clone(),
        peer: peer.peer.clone(),
        text: Some(config.pipeline.approved_reply.clone()),
        media: Vec::new(),
        reply_to: None,
        extra: clawbridge_core::ChannelData::default(),
    };
    let key = IdempotencyKey::new(format!("approved-{}-{code}", peer.channel));
    Some(NewOutbound { idempotency_key: key, message, inbound_id: None, not_before: None })
}
