//! Integration tests of clawbridge-gateway: against a scripted fake gateway (fast, always run)
//! and against a real OpenClaw 2026.9.6 gateway through clawbridge-testkit (skipped with a
//! message when Node 24 / openclaw are not installed; see scripts/install-e2e.sh).

mod agent_runs;
mod device_key;
mod fake;
mod handshake;
mod node;
mod real;
mod reconnect;
mod requests;

#[test]
fn client_handle_is_send_sync_clone() {
    fn check<T: Send + Sync + Clone + 'static>() {}
    check::<clawbridge_gateway::GatewayClient>();
    check::<clawbridge_gateway::GatewayError>();
}
