//! Conformance of campaigns (`CampaignStore`), on every backend.

use crate::target::Target;
use clawbridge_core::{AccountId, ChannelId, EpochMs, IdempotencyKey, OutboundMessage, PeerId};
use clawbridge_store::{
    Added, BizmsgResult, CampaignState, DeliveryUpdate, NewBizmsg, NewCampaign, NewOutbound, NewRecipient,
    RecipientState, SendKind, SharedStore, Suppression,
};
use std::sync::{Arc, Mutex};

const NOW: EpochMs = 1_700_000_000_000;
const LEASE: EpochMs = 30_000;

fn campaign(id: &str, channel: &str) -> NewCampaign {
    NewCampaign {
        id: id.to_owned(),
        name: format!("sale {id}"),
        channel: channel.to_owned(),
        account: "default".to_owned(),
        spec: r#"{"variants":[{"name":"A"}]}"#.to_owned(),
        rate_per_minute: Some(600),
        quiet_hours: channel == "brand",
        start_at: None,
        link_key: "key".to_owned(),
    }
}

fn recipient(n: u32, variant: &str) -> NewRecipient {
    let number = format!("010{n:08}");
    NewRecipient {
        suppression_key: format!("82{}", &number[1..]),
        recipient: number,
        variant: variant.to_owned(),
        variables: format!(r#"{{"name":"c{n}"}}"#),
        line: u64::from(n) + 2,
        held: false,
    }
}

fn suppression(key: &str) -> Suppression {
    Suppression {
        account: "default".to_owned(),
        recipient_key: key.to_owned(),
        reason: "STOP".to_owned(),
        source: "whatsapp".to_owned(),
        created_at: NOW,
    }
}

async fn with_recipients(store: &SharedStore, id: &str, n: u32) -> Added {
    assert!(store.create_campaign(&campaign(id, "alimtalk"), NOW).await.unwrap());
    let rows: Vec<NewRecipient> = (0..n).map(|i| recipient(i, if i % 2 == 0 { "A" } else { "B" })).collect();
    store.add_campaign_recipients(id, "default", &rows, NOW).await.unwrap()
}

pub async fn campaigns_store_recipients_once_and_suppress_opt_outs(t: &Target) {
    let store = t.open().await;
    assert!(store.suppress(&suppression("821000000003")).await.unwrap());
    assert!(!store.suppress(&suppression("821000000003")).await.unwrap(), "already listed");
    let added = with_recipients(&store, "c1", 5).await;
    assert_eq!(added, Added { inserted: 5, suppressed: 1, duplicates: 0 });
    assert!(!store.create_campaign(&campaign("c1", "alimtalk"), NOW).await.unwrap(), "the id is taken");
    let again = store.add_campaign_recipients("c1", "default", &[recipient(1, "B"), recipient(9, "A")], NOW).await;
    assert_eq!(again.unwrap(), Added { inserted: 1, suppressed: 0, duplicates: 1 });

    let c = store.get_campaign("c1").await.unwrap().unwrap();
    assert_eq!(
        (c.state, c.channel.as_str(), c.rate_per_minute, c.quiet_hours),
        (CampaignState::Draft, "alimtalk", Some(600), false)
    );
    assert_eq!((c.created_at, c.started_at, c.summary.as_str()), (NOW, None, "{}"));
    store.set_campaign_summary("c1", r#"{"invalid":2}"#, NOW + 1).await.unwrap();
    assert_eq!(store.get_campaign("c1").await.unwrap().unwrap().summary, r#"{"invalid":2}"#);

    let rows = store.campaign_recipients("c1", None, 0, 100).await.unwrap();
    assert_eq!(rows.len(), 6);
    assert_eq!(rows[0].recipient, "01000000000");
    assert_eq!((rows[0].variant.as_str(), rows[0].line, rows[0].variables.as_str()), ("A", 2, r#"{"name":"c0"}"#));
    assert_eq!(rows[3].state, RecipientState::Suppressed);
    let page = store.campaign_recipients("c1", Some(RecipientState::Pending), rows[1].id, 2).await.unwrap();
    assert_eq!(page.iter().map(|r| r.line).collect::<Vec<_>>(), [4, 6]);
    assert_eq!(store.get_campaign_recipient(rows[2].id).await.unwrap().unwrap(), rows[2]);
    assert!(store.get_campaign("nope").await.unwrap().is_none());
}

pub async fn campaign_states_move_by_compare_and_set(t: &Target) {
    let store = t.open().await;
    with_recipients(&store, "c1", 1).await;
    with_recipients(&store, "c2", 1).await;
    use CampaignState::*;
    assert!(!store.transition_campaign("c1", &[Paused], Running, None, None, NOW).await.unwrap(), "not paused");
    assert!(store.transition_campaign("c1", &[Draft, Paused], Running, None, None, NOW + 5).await.unwrap());
    assert!(store.transition_campaign("c2", &[Draft], Scheduled, None, Some(NOW + 60_000), NOW).await.unwrap());
    let due: Vec<String> = store.due_campaigns(NOW + 10).await.unwrap().into_iter().map(|c| c.id).collect();
    assert_eq!(due, ["c1"]);
    let due: Vec<String> = store.due_campaigns(NOW + 60_000).await.unwrap().into_iter().map(|c| c.id).collect();
    assert_eq!(due, ["c1", "c2"]);
    store.set_campaign_waiting("c1", Some(NOW + 1_000), NOW + 6).await.unwrap();
    assert_eq!(store.get_campaign("c1").await.unwrap().unwrap().waiting_until, Some(NOW + 1_000));
    assert!(store.transition_campaign("c1", &[Running], Paused, Some("operator"), None, NOW + 7).await.unwrap());
    let c = store.get_campaign("c1").await.unwrap().unwrap();
    assert_eq!(
        (c.state, c.note.as_deref(), c.waiting_until, c.started_at),
        (Paused, Some("operator"), None, Some(NOW + 5))
    );
    assert!(store.transition_campaign("c1", &[Paused], Running, None, None, NOW + 8).await.unwrap());
    assert_eq!(store.get_campaign("c1").await.unwrap().unwrap().started_at, Some(NOW + 5), "the first start stays");
    assert!(store.transition_campaign("c1", &[Running], Done, None, None, NOW + 9).await.unwrap());
    let c = store.get_campaign("c1").await.unwrap().unwrap();
    assert_eq!((c.state, c.finished_at), (Done, Some(NOW + 9)));
    assert_eq!(store.list_campaigns(10).await.unwrap().len(), 2);
    assert!(store.delete_campaign("c2").await.unwrap());
    assert!(!store.delete_campaign("c2").await.unwrap());
    assert_eq!(store.list_campaigns(10).await.unwrap().len(), 1);
}

pub async fn campaign_claims_lease_release_and_skip_suppressed(t: &Target) {
    let store = t.open().await;
    with_recipients(&store, "c1", 6).await;
    // Opted out after the campaign was made: caught at the claim.
    store.suppress(&suppression("821000000001")).await.unwrap();
    let claimed = store.claim_campaign_recipients("c1", "default", "w1", 3, LEASE, NOW).await.unwrap();
    assert_eq!(claimed.suppressed, 1);
    let lines: Vec<u64> = claimed.rows.iter().map(|r| r.line).collect();
    assert_eq!(lines, [2, 4], "file order, the opted-out one left out");
    assert!(claimed.rows.iter().all(|r| r.state == RecipientState::Sending && r.attempts == 1));
    let (a, b) = (claimed.rows[0].id, claimed.rows[1].id);

    assert!(store.mark_campaign_recipient_queued(a, "w1", SendKind::Bizmsg, 77, NOW).await.unwrap());
    assert!(
        !store.mark_campaign_recipient_queued(a, "w1", SendKind::Bizmsg, 78, NOW).await.unwrap(),
        "not claimed now"
    );
    assert!(!store.mark_campaign_recipient_failed(b, "w2", "x", "y", NOW).await.unwrap(), "another worker's");
    store.release_campaign_recipient(b, "w1").await.unwrap();
    let row = store.get_campaign_recipient(a).await.unwrap().unwrap();
    assert_eq!((row.state, row.send_kind, row.send_ref), (RecipientState::Queued, Some(SendKind::Bizmsg), Some(77)));
    let row = store.get_campaign_recipient(b).await.unwrap().unwrap();
    assert_eq!((row.state, row.attempts), (RecipientState::Pending, 0));

    // A lease that runs out lets another worker claim the row; the first can no longer mark it.
    let first = store.claim_campaign_recipients("c1", "default", "w1", 1, LEASE, NOW).await.unwrap();
    assert_eq!(first.rows[0].id, b);
    assert!(store.claim_campaign_recipients("c1", "default", "w2", 1, LEASE, NOW + 1).await.unwrap().rows[0].id != b);
    let again = store.claim_campaign_recipients("c1", "default", "w3", 10, LEASE, NOW + LEASE + 1).await.unwrap();
    assert!(again.rows.iter().any(|r| r.id == b), "expired lease");
    assert!(!store.mark_campaign_recipient_failed(b, "w1", "x", "y", NOW).await.unwrap());
    assert!(store.mark_campaign_recipient_failed(b, "w3", "invalid", "too long", NOW + LEASE + 2).await.unwrap());
    let row = store.get_campaign_recipient(b).await.unwrap().unwrap();
    assert_eq!(
        (row.state, row.result_code.as_deref(), row.result_reason.as_deref()),
        (RecipientState::Failed, Some("invalid"), Some("too long"))
    );

    // Held recipients (an A/B test's rest) go to the winner when released.
    let held = NewRecipient { held: true, ..recipient(50, "") };
    assert_eq!(store.add_campaign_recipients("c1", "default", &[held], NOW).await.unwrap().inserted, 1);
    assert!(
        store
            .claim_campaign_recipients("c1", "default", "w9", 10, LEASE, NOW + LEASE * 3)
            .await
            .unwrap()
            .rows
            .iter()
            .all(|r| r.line != 52),
        "held is not claimable"
    );
    assert_eq!(store.release_held_recipients("c1", "B", NOW).await.unwrap(), 1);
    let released = store.campaign_recipients("c1", Some(RecipientState::Pending), 0, 10).await.unwrap();
    assert_eq!(released.iter().map(|r| (r.line, r.variant.as_str())).collect::<Vec<_>>(), [(52, "B")]);
    store.set_campaign_spec("c1", r#"{"winner":"B"}"#, NOW).await.unwrap();
    assert_eq!(store.get_campaign("c1").await.unwrap().unwrap().spec, r#"{"winner":"B"}"#);

    // Cancelling leaves what is not pending alone.
    let cancelled = store.cancel_campaign_recipients("c1", NOW).await.unwrap();
    let counts = store.campaign_counts("c1").await.unwrap();
    let of = |s: RecipientState| counts.states.iter().filter(|(_, st, _)| *st == s).map(|(_, _, n)| n).sum::<u64>();
    assert_eq!(of(RecipientState::Cancelled), cancelled);
    assert_eq!(of(RecipientState::Pending), 0);
    assert_eq!(of(RecipientState::Queued) + of(RecipientState::Failed) + of(RecipientState::Suppressed), 3);
}

pub async fn concurrent_campaign_claims_take_each_recipient_once(t: &Target) {
    let store = t.open().await;
    with_recipients(&store, "c1", 120).await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut workers = Vec::new();
    for w in 0..4 {
        let (store, seen) = (store.clone(), seen.clone());
        workers.push(tokio::spawn(async move {
            let worker = format!("w{w}");
            loop {
                let claimed = store.claim_campaign_recipients("c1", "default", &worker, 7, LEASE, NOW).await.unwrap();
                if claimed.rows.is_empty() {
                    break;
                }
                for row in claimed.rows {
                    seen.lock().unwrap().push(row.id);
                    let queued =
                        store.mark_campaign_recipient_queued(row.id, &worker, SendKind::Outbox, row.id, NOW).await;
                    assert!(queued.unwrap());
                }
            }
        }));
    }
    for worker in workers {
        worker.await.unwrap();
    }
    let mut seen = seen.lock().unwrap().clone();
    seen.sort_unstable();
    let before = seen.len();
    seen.dedup();
    assert_eq!((before, seen.len()), (120, 120), "every recipient claimed exactly once");
}

fn bizmsg(key: &str, recipient: &str) -> NewBizmsg {
    NewBizmsg {
        idempotency_key: key.to_owned(),
        account: "default".to_owned(),
        product: "alimtalk".to_owned(),
        dealer: "nhn".to_owned(),
        recipient: recipient.to_owned(),
        template_code: Some("SALE".to_owned()),
        payload: "{}".to_owned(),
        origin: "campaign:c1".to_owned(),
        not_before: NOW,
    }
}

fn whatsapp(key: &str, peer: &str) -> NewOutbound {
    NewOutbound {
        idempotency_key: IdempotencyKey::new(key),
        message: OutboundMessage {
            channel: ChannelId::new("whatsapp"),
            account: AccountId::new("default"),
            peer: PeerId::new(peer),
            text: None,
            media: Vec::new(),
            reply_to: None,
            extra: clawbridge_core::ChannelData::default(),
        },
        inbound_id: None,
        not_before: None,
    }
}

pub async fn campaign_recipients_follow_their_send_rows(t: &Target) {
    let store = t.open().await;
    with_recipients(&store, "c1", 6).await;
    let claimed = store.claim_campaign_recipients("c1", "default", "r", 6, LEASE, NOW).await.unwrap().rows;
    // Four go through the business-message queue, two through the outbox.
    let mut bizmsg_ids = Vec::new();
    for row in &claimed[..4] {
        let stored =
            store.enqueue_bizmsg(&[bizmsg(&format!("campaign:c1:{}", row.recipient), &row.recipient)], NOW).await;
        let id = stored.unwrap()[0].id;
        bizmsg_ids.push(id);
        assert!(store.mark_campaign_recipient_queued(row.id, "r", SendKind::Bizmsg, id, NOW).await.unwrap());
    }
    let mut outbox_ids = Vec::new();
    for row in &claimed[4..] {
        let ids =
            store.enqueue_outbound(&[whatsapp(&format!("campaign:c1:{}", row.recipient), &row.recipient)], NOW).await;
        let id = ids.unwrap()[0];
        outbox_ids.push(id);
        assert!(store.mark_campaign_recipient_queued(row.id, "r", SendKind::Outbox, id, NOW).await.unwrap());
    }
    assert_eq!(store.sync_campaign_results("c1", NOW).await.unwrap(), 0, "nothing sent yet");

    let taken = store.claim_bizmsg("sender", 10, LEASE, NOW + 1).await.unwrap();
    assert_eq!(taken.len(), 4);
    for (i, row) in taken.iter().enumerate() {
        if i == 3 {
            assert!(store.mark_bizmsg_dead(row.id, "sender", "dealer refused: code -2019", NOW + 2).await.unwrap());
        } else {
            assert!(store.mark_bizmsg_accepted(row.id, "sender", &format!("d{i}"), NOW + 2).await.unwrap());
        }
    }
    let sent = store.claim_outbound("sender", 10, LEASE, NOW + 1).await.unwrap();
    assert_eq!(sent.len(), 2);
    assert!(store.mark_sent(sent[0].id, "sender", Some("wamid.1"), NOW + 2).await.unwrap());
    assert!(
        store.mark_dead(sent[1].id, "sender", "Kapso HTTP 400, error 131049: marketing limit", NOW + 2).await.unwrap()
    );
    assert_eq!(store.sync_campaign_results("c1", NOW + 3).await.unwrap(), 6);
    assert_eq!(store.sync_campaign_results("c1", NOW + 4).await.unwrap(), 0, "nothing new");

    // Results: d0 delivered, d1 failed (3019) with the SMS fallback sent; wamid.1 read.
    let result = |id: &str, result: &str, code: &str, fallback: Option<&str>, at| BizmsgResult {
        dealer: "nhn".to_owned(),
        dealer_id: id.to_owned(),
        result: result.to_owned(),
        code: Some(code.to_owned()),
        reason: Some(format!("reason {code}")),
        fallback: fallback.map(str::to_owned),
        rank: 2,
        at,
    };
    assert!(store.record_bizmsg_result(&result("d0", "delivered", "1000", None, NOW + 3_600_000)).await.unwrap());
    assert!(store.record_bizmsg_result(&result("d1", "failed", "3019", Some("sent"), NOW + 3_600_001)).await.unwrap());
    let update = DeliveryUpdate {
        channel: ChannelId::new("whatsapp"),
        platform_message_id: "wamid.1".to_owned(),
        status: "read".to_owned(),
        error: None,
        at: NOW + 7_200_000,
    };
    assert!(store.record_delivery(&update).await.unwrap());
    assert_eq!(store.sync_campaign_results("c1", NOW + 7_200_001).await.unwrap(), 3);

    let rows = store.campaign_recipients("c1", None, 0, 10).await.unwrap();
    let by_line = |line: u64| rows.iter().find(|r| r.line == line).unwrap();
    assert_eq!((by_line(2).state, by_line(2).platform_id.as_deref()), (RecipientState::Delivered, Some("d0")));
    assert_eq!(by_line(2).result_at, Some(NOW + 3_600_000));
    let failed = by_line(3);
    assert_eq!(
        (failed.state, failed.result_code.as_deref(), failed.fallback.as_deref()),
        (RecipientState::Failed, Some("3019"), Some("sent"))
    );
    assert_eq!(by_line(4).state, RecipientState::Accepted);
    assert_eq!((by_line(5).state, by_line(5).result_code.as_deref()), (RecipientState::Failed, Some("-2019")));
    assert_eq!((by_line(6).state, by_line(6).platform_id.as_deref()), (RecipientState::Delivered, Some("wamid.1")));
    assert_eq!((by_line(7).state, by_line(7).result_code.as_deref()), (RecipientState::Failed, Some("131049")));

    let counts = store.campaign_counts("c1").await.unwrap();
    assert_eq!(
        counts.states,
        [
            ("A".to_owned(), RecipientState::Accepted, 1),
            ("A".to_owned(), RecipientState::Delivered, 2),
            ("B".to_owned(), RecipientState::Failed, 3),
        ]
    );
    assert_eq!(counts.fallbacks, [("B".to_owned(), 1)]);
    let codes: Vec<(&str, &str, u64)> =
        counts.failures.iter().map(|(v, c, _, n)| (v.as_str(), c.as_str(), *n)).collect();
    assert_eq!(codes, [("B", "-2019", 1), ("B", "131049", 1), ("B", "3019", 1)]);
    let timeline = store.campaign_timeline("c1", 3_600_000).await.unwrap();
    let hour = |at: EpochMs| at / 3_600_000 * 3_600_000;
    assert_eq!(timeline, [(hour(NOW + 3_600_000), 1, 0), (hour(NOW + 7_200_000), 1, 0)]);
    let recent = store.recent_campaign_counts(NOW).await.unwrap();
    assert_eq!(recent.iter().map(|(_, _, n)| n).sum::<u64>(), 6);
    let _ = (bizmsg_ids, outbox_ids);
}

pub async fn campaign_clicks_count_once_per_recipient_and_the_list_is_per_account(t: &Target) {
    let store = t.open().await;
    with_recipients(&store, "c1", 4).await;
    let rows = store.campaign_recipients("c1", None, 0, 10).await.unwrap();
    assert!(store.record_click("c1", rows[0].id, 0, NOW).await.unwrap(), "first click");
    assert!(!store.record_click("c1", rows[0].id, 0, NOW + 1).await.unwrap(), "the same link again");
    assert!(store.record_click("c1", rows[0].id, 1, NOW + 2).await.unwrap(), "another link");
    assert!(store.record_click("c1", rows[1].id, 0, NOW + 3_600_000).await.unwrap());
    let counts = store.campaign_counts("c1").await.unwrap();
    assert_eq!(counts.clicks, [("A".to_owned(), 1, 3), ("B".to_owned(), 1, 1)]);
    let timeline = store.campaign_timeline("c1", 3_600_000).await.unwrap();
    let hour = |at: EpochMs| at / 3_600_000 * 3_600_000;
    assert_eq!(timeline, [(hour(NOW), 0, 1), (hour(NOW + 3_600_000), 0, 1)]);

    store.suppress(&suppression("821011112222")).await.unwrap();
    let other = Suppression { account: "shop2".to_owned(), created_at: NOW + 5, ..suppression("821033334444") };
    store.suppress(&other).await.unwrap();
    assert!(store.is_suppressed("default", "821011112222").await.unwrap());
    assert!(!store.is_suppressed("shop2", "821011112222").await.unwrap(), "per account");
    let all = store.list_suppressions(None, 10).await.unwrap();
    assert_eq!(all.iter().map(|s| s.recipient_key.as_str()).collect::<Vec<_>>(), ["821033334444", "821011112222"]);
    assert_eq!(store.list_suppressions(Some("shop2"), 10).await.unwrap(), [other]);
    assert!(store.unsuppress("default", "821011112222").await.unwrap());
    assert!(!store.unsuppress("default", "821011112222").await.unwrap());
    assert!(store.delete_campaign("c1").await.unwrap());
    assert!(store.campaign_recipients("c1", None, 0, 10).await.unwrap().is_empty());
    assert!(store.campaign_counts("c1").await.unwrap().clicks.is_empty());
}
