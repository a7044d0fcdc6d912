//! Integration tests of clawbridge-store.
//!
//! - [`conformance`]: every behaviour of the `Store` trait, written once against `&Target` and
//!   instantiated for each backend by [`conformance_suite!`] (the pattern of matrix-rust-sdk's
//!   `statestore_integration_tests!`). Tests are named `suite::<backend>::<behaviour>`, so
//!   `cargo test -p clawbridge-store suite::postgres` runs one backend.
//! - [`target`]: how each backend is set up: a temp dir for SQLite, a fresh schema for
//!   PostgreSQL (`CLAWBRIDGE_TEST_DATABASE_URL`, default `postgres://postgres@127.0.0.1:5432/test`;
//!   an unreachable server fails the tests unless `CLAWBRIDGE_SKIP_POSTGRES=1`), a new
//!   `MemoryStore` for memory.
//! - [`secrets`], [`sqlite_only`], [`postgres_only`], [`memory_only`]: what is not shared.

mod bizmsg;
mod campaign;
mod conformance;
mod console;
mod memory_only;
mod postgres_only;
mod secrets;
mod sqlite_only;
mod target;

/// Generates one `#[tokio::test]` per conformance test for a backend. The body runs in a spawned
/// task so that a failing assertion still lets the target clean up (drop its schema) before the
/// panic is re-raised.
macro_rules! conformance_suite {
    ($backend:ident => $($test:ident),+ $(,)?) => {
        mod $backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let Some(target) = crate::target::Target::$backend().await else { return };
                    let target = std::sync::Arc::new(target);
                    let run = tokio::spawn({
                        let target = target.clone();
                        async move { crate::conformance::$test(&target).await }
                    })
                    .await;
                    match std::sync::Arc::into_inner(target) {
                        Some(target) => target.cleanup().await,
                        None => unreachable!("the test task has finished"),
                    }
                    if let Err(e) = run {
                        std::panic::resume_unwind(e.into_panic());
                    }
                }
            )+
        }
    };
}

/// The list of conformance tests, once, for every backend.
macro_rules! for_each_backend {
    ($($test:ident),+ $(,)?) => {
        mod suite {
            conformance_suite!(sqlite => $($test),+);
            conformance_suite!(postgres => $($test),+);
            conformance_suite!(memory => $($test),+);
        }
    };
}

for_each_backend!(
    insert_inbound_dedups_on_channel_account_message_id,
    concurrent_inserts_each_get_their_own_outcome,
    complete_and_claim_hands_the_first_reply_to_the_completer,
    inbound_payload_round_trips,
    inbound_claims_keep_lane_order,
    inbound_claims_respect_limit_and_next_at,
    expired_inbound_lease_lets_another_worker_claim,
    renew_extends_the_inbound_lease,
    renew_extends_the_outbound_lease,
    release_inbound_gives_the_row_back,
    complete_inbound_enqueues_replies_atomically_and_idempotently,
    fail_inbound_retries_then_fails_for_good,
    enqueue_outbound_returns_ids_in_input_order,
    outbound_claims_keep_lane_order_and_wait_for_not_before,
    outbound_retry_then_dead,
    stale_outbound_worker_cannot_mark,
    release_outbound_restores_the_ready_state,
    delivery_status_only_moves_forward_and_failed_wins,
    cursors_round_trip,
    leases_are_exclusive_until_expiry,
    remember_key_is_true_once_until_expiry,
    channel_state_put_get_take_list_expire,
    channel_state_if_absent_claims_once_until_expiry,
    pairing_issue_pending_too_many_approve_revoke,
    pairing_codes_expire,
    pairing_code_collisions_are_refused,
    secrets_round_trip_and_bind_to_key_and_name,
    queue_stats_count_every_state,
    dead_letters_are_newest_first_and_limited,
    check_writable_writes_a_heartbeat,
    prune_removes_only_finished_rows_and_expired_keys,
    migrations_run_once_when_opened_concurrently_and_again,
    concurrent_inbound_claims_deliver_each_row_once,
    concurrent_outbound_claims_deliver_each_row_once,
    quotas_grant_up_to_the_limit_per_key_and_window,
    quota_windows_are_pruned_once_ended,
    concurrent_quota_takers_never_pass_the_limit,
    bizmsg_enqueue_is_idempotent_and_keeps_every_field,
    bizmsg_claims_one_row_per_recipient_in_order_and_wait_for_not_before,
    bizmsg_retry_release_and_expired_leases,
    bizmsg_results_only_move_forward,
    bizmsg_unfinished_rows_are_those_whose_result_can_still_change,
    concurrent_bizmsg_claims_deliver_each_row_once,
    campaigns_store_recipients_once_and_suppress_opt_outs,
    campaign_states_move_by_compare_and_set,
    campaign_claims_lease_release_and_skip_suppressed,
    concurrent_campaign_claims_take_each_recipient_once,
    campaign_recipients_follow_their_send_rows,
    campaign_clicks_count_once_per_recipient_and_the_list_is_per_account,
    console_lanes_list_conversations_newest_first_with_their_messages,
    console_dead_letters_retry_and_discard_are_audited,
    pairing_reject_removes_the_request_without_approving,
);
