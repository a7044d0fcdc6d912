//! Assembles and runs the daemon: store, gateway client, channels, HTTP listener, workers;
//! and takes it down again in order, draining in-flight work within a deadline.

use crate::bridge::{StoreBridge, Wakers};
use crate::config::Config;
use crate::http::{self, DEFAULT_BODY_LIMIT, HealthState};
use crate::pipeline::{self, Shared};
use crate::registry::Registry;
use crate::telemetry::metrics_handle;
use crate::util::{now_ms, worker_id};
use anyhow::Context as _;
use axum::extract::DefaultBodyLimit;
use clawbridge_channel::plugin::ConnectorContext;
use clawbridge_channel::{AccountContext, AccountStatus, Connector, RouteContext};
use clawbridge_gateway::{GatewayClient, GatewayConfig};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A running daemon.
#[derive(Debug)]
pub struct DaemonHandle {
    /// Where the HTTP listener is bound (useful with port 0 in tests).
    pub addr: SocketAddr,
    shutdown: CancellationToken,
    finished: JoinHandle<()>,
    gateway: GatewayClient,
    tools: Option<crate::tools::ToolService>,
}

impl DaemonHandle {
    /// The gateway client (tests observe its state).
    pub fn gateway(&self) -> &GatewayClient {
        &self.gateway
    }

    /// The agent tools' node connection and status, when any tool is published.
    pub fn tools(&self) -> Option<&crate::tools::ToolService> {
        self.tools.as_ref()
    }

    /// Stops accepting, drains in-flight work (up to the drain deadline) and returns.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        let _ = self.finished.await;
    }
}

/// The channels a daemon serves.
pub enum Channels {
    /// Every channel the configuration enables ([`channels::enabled`](crate::channels::enabled)),
    /// built once the store is open, on the daemon's bridge: what `serve` runs.
    Configured,
    /// Connectors built beforehand (tests and benchmarks with a channel of their own).
    Given(Vec<Arc<dyn Connector>>),
}

impl From<Vec<Arc<dyn Connector>>> for Channels {
    fn from(connectors: Vec<Arc<dyn Connector>>) -> Self {
        Self::Given(connectors)
    }
}

impl std::fmt::Debug for Channels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Configured => f.write_str("Configured"),
            Self::Given(connectors) => f.debug_list().entries(connectors.iter().map(|c| c.id())).finish(),
        }
    }
}

/// Starts the daemon with the given channels. Returns once the listener is bound and the
/// workers run; the gateway connects in the background (an unreachable gateway does not stop
/// the bridge from accepting and queueing messages).
///
/// # Errors
/// Configuration, state dir, store, channel and listener problems, each naming the setting to fix.
pub async fn start(config: Config, channels: impl Into<Channels>) -> anyhow::Result<DaemonHandle> {
    start_with_routes(config, channels, axum::Router::new()).await
}

/// [`start`], with `extra` routes served on the daemon's own listener (the sandbox page of
/// `clawbridge sandbox`), so they share its origin with `/console` and the webhooks.
///
/// # Errors
/// As [`start`].
pub async fn start_with_routes(
    config: Config,
    channels: impl Into<Channels>,
    extra: axum::Router,
) -> anyhow::Result<DaemonHandle> {
    // Install the recorder before anything records (the gateway client counts from its first connect).
    let metrics = metrics_handle();
    config.ensure_state_dir()?;
    let token = config.require_token()?.clone();
    let store = clawbridge_store::open(&config.bridge.database_url).await.with_context(|| {
        format!(
            "cannot open the store {} (CLAWBRIDGE_DATABASE_URL)",
            clawbridge_store::redact_url(&config.bridge.database_url)
        )
    })?;
    store.check_writable(now_ms()).await.context("the store is not writable")?;
    // What the channels' commands stored (the webhook secret of `setup whatsapp`) completes
    // their settings before anything is built from them.
    let config = Arc::new(crate::channels::with_stored_secrets(config, Some(&store)).await?);

    // Channels are built on the bridge, so they have it from construction on.
    let wakers = Arc::new(Wakers::default());
    let worker = worker_id();
    let bridge = Arc::new(StoreBridge::new(store.clone(), wakers.clone(), worker.clone()));
    let connectors = match channels.into() {
        Channels::Configured => crate::channels::enabled(&config, &ConnectorContext { bridge: bridge.clone() })?,
        Channels::Given(connectors) => connectors,
    };

    let gateway_stop = CancellationToken::new();
    let mut gateway_config = GatewayConfig::new(config.gateway.url.clone(), Some(token), config.device_key_path());
    gateway_config.client_display_name = "clawbridge".to_owned();
    gateway_config.client_version = env!("CARGO_PKG_VERSION").to_owned();
    let gateway =
        GatewayClient::spawn(gateway_config, gateway_stop.clone()).context("cannot start the gateway client")?;

    if connectors.is_empty() {
        tracing::warn!("no channel is enabled: the bridge runs, but no platform can reach the agent");
    }
    let mut registry = Registry::new(connectors);
    let catalog = crate::tools::catalog::catalog(&config);
    if catalog.iter().any(|t| {
        matches!(
            t.name,
            crate::tools::catalog::ToolName::KakaoPush
                | crate::tools::catalog::ToolName::KakaoSendMe
                | crate::tools::catalog::ToolName::KakaoSendFriends
        )
    }) {
        for (channel, account) in crate::tools::accounts::kakao_accounts(&config, bridge.clone()) {
            registry.add_account(channel, account);
        }
    }
    let registry = Arc::new(registry);
    let tools = crate::tools::ToolService::start(
        crate::tools::calls::Tools {
            config: config.clone(),
            store: store.clone(),
            wakers: wakers.clone(),
            registry: registry.clone(),
            published: crate::tools::published(&catalog),
        },
        catalog,
        gateway.clone(),
        gateway_stop.child_token(),
    )
    .context("cannot start the agent tools' node connection")?;

    // Channels: one context per account; webhook routes merged into the one listener.
    let channels_stop = CancellationToken::new();
    let channel_tasks = TaskTracker::new();
    let mut app = axum::Router::new();
    let route_context = RouteContext { bridge: bridge.clone() };
    for connector in registry.connectors() {
        if let Some(routes) = connector.routes(&route_context) {
            app = app.merge(routes);
        }
    }
    let mut statuses = Vec::new();
    for (channel, account) in registry.accounts() {
        let (status_tx, status_rx) = watch::channel(AccountStatus::Starting);
        let ctx = AccountContext {
            channel: channel.clone(),
            account: account.id(),
            bridge: bridge.clone(),
            status: Arc::new(status_tx),
            cancel: channels_stop.child_token(),
        };
        statuses.push((format!("{}/{}", channel, account.id()), status_rx));
        let account = account.clone();
        channel_tasks.spawn(async move {
            let status = ctx.status.clone();
            status.send_replace(AccountStatus::Running);
            match account.run(ctx).await {
                Ok(()) => status.send_replace(AccountStatus::Stopped),
                Err(e) => {
                    tracing::error!(error = %e, "channel account stopped");
                    status.send_replace(AccountStatus::Failed(e.to_string()))
                }
            };
        });
    }
    let bizmsg = config.channel::<clawbridge_bizmsg::config::BizmsgConfig>(clawbridge_bizmsg::plugin::ID).cloned();
    if let Some(bizmsg) = &bizmsg {
        app = app.merge(pipeline::bizmsg::webhook_routes(store.clone(), bizmsg));
    }
    app = app.merge(crate::campaign::web::routes(crate::campaign::web::Links {
        store: store.clone(),
        bizmsg: bizmsg.clone().map(Arc::new),
        clock: Arc::new(clawbridge_core::clock::SystemClock),
    }));
    let health = HealthState {
        store: store.clone(),
        gateway: gateway.clone(),
        accounts: Arc::new(statuses),
        metrics,
        tools: tools.as_ref().map(crate::tools::ToolService::watch),
        checks: Arc::default(),
    };
    // The operator console on the same listener (off, with the reason logged, when it would be
    // reachable from elsewhere without a token).
    let console = crate::console::Console::new(store.clone(), health.clone(), config.clone(), wakers.clone());
    if let Some(why) = crate::console::off_reason(&config) {
        tracing::info!("{why}; {}", crate::console::TURN_ON);
    }
    let app = app
        .merge(extra)
        .merge(http::router(health))
        .merge(crate::console::routes(console))
        .route_layer(axum::middleware::from_fn(http::observe))
        .layer(DefaultBodyLimit::max(DEFAULT_BODY_LIMIT));

    let listen = config.bridge.listen;
    let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| {
        format!("cannot listen on {listen}: set CLAWBRIDGE_LISTEN (or KAPSO_WEBHOOK_ADDR) to a free HOST:PORT")
    })?;
    let addr = listener.local_addr()?;
    let http_stop = CancellationToken::new();
    let http_task = tokio::spawn(http::serve_public(listener, app, config.bridge.limits, http_stop.clone()));

    let abandon = CancellationToken::new();
    let shared = Shared {
        config: config.clone(),
        store: store.clone(),
        gateway: gateway.clone(),
        registry,
        wakers,
        worker,
        abandon: abandon.clone(),
        in_flight: pipeline::InFlight::default(),
    };
    let workers_stop = CancellationToken::new();
    let inbox_tasks = TaskTracker::new();
    let outbox_tasks = TaskTracker::new();
    let inbox = tokio::spawn(pipeline::inbox::run(shared.clone(), workers_stop.clone(), inbox_tasks.clone()));
    let outbox = tokio::spawn(pipeline::outbox::run(shared.clone(), workers_stop.clone(), outbox_tasks.clone()));
    let housekeeping = tokio::spawn(housekeeping(shared.clone(), workers_stop.clone()));
    let wake_bizmsg: Arc<tokio::sync::Notify> = Arc::default();
    let campaigns = crate::campaign::runner::CampaignRunner {
        store: store.clone(),
        bizmsg: bizmsg.clone().map(Arc::new),
        clock: Arc::new(clawbridge_core::clock::SystemClock),
        worker: shared.worker.clone(),
        wake_bizmsg: wake_bizmsg.clone(),
        wakers: shared.wakers.clone(),
    };
    let campaign_runner = tokio::spawn(campaigns.run(workers_stop.clone(), None));
    let bizmsg_worker = match bizmsg {
        Some(bizmsg) => {
            let client =
                clawbridge_bizmsg::client::DealerClient::new(&bizmsg, clawbridge_bizmsg::client::DEFAULT_TIMEOUT)
                    .map_err(anyhow::Error::msg)?;
            let worker = pipeline::bizmsg::BizmsgWorker {
                store: store.clone(),
                config: Arc::new(bizmsg),
                client,
                retry: config.retry.queue,
                worker: shared.worker.clone(),
                wake: wake_bizmsg,
                clock: Arc::new(clawbridge_core::clock::SystemClock),
            };
            tracing::info!(dealer = worker.client.dealer().id(), "business messages: sending from the store");
            Some(tokio::spawn(worker.run(workers_stop.clone())))
        }
        None => None,
    };

    tracing::info!(%addr, store = store.backend(), gateway = %config.gateway.url, "clawbridge is running");

    let shutdown = CancellationToken::new();
    let finished = {
        let shutdown = shutdown.clone();
        let drain = config.pipeline.drain_timeout;
        tokio::spawn(async move {
            shutdown.cancelled().await;
            tracing::info!(drain_secs = drain.as_secs(), "shutting down: draining in-flight work");
            workers_stop.cancel();
            http_stop.cancel();
            let _ = tokio::join!(inbox, outbox, housekeeping, campaign_runner);
            if let Some(bizmsg) = bizmsg_worker {
                let _ = bizmsg.await;
            }
            inbox_tasks.close();
            outbox_tasks.close();
            let drained = tokio::time::timeout(drain, async {
                inbox_tasks.wait().await;
                outbox_tasks.wait().await;
            })
            .await;
            if drained.is_err() {
                // In-flight work hands its rows back; the next start (or another replica)
                // resumes them with the same idempotency keys, so no run or send repeats.
                tracing::warn!("drain deadline reached; unfinished messages resume on the next start");
                abandon.cancel();
                let _ = tokio::time::timeout(Duration::from_secs(5), async {
                    inbox_tasks.wait().await;
                    outbox_tasks.wait().await;
                })
                .await;
            }
            channels_stop.cancel();
            channel_tasks.close();
            let _ = tokio::time::timeout(Duration::from_secs(5), channel_tasks.wait()).await;
            let _ = tokio::time::timeout(Duration::from_secs(5), http_task).await;
            gateway_stop.cancel();
            tracing::info!("clawbridge stopped");
        })
    };
    Ok(DaemonHandle { addr, shutdown, finished, gateway, tools })
}

/// Prunes finished rows older than `bridge.retention_days` (a week unless set), hourly.
async fn housekeeping(shared: Shared, stop: CancellationToken) {
    let retention_ms = i64::try_from(shared.config.bridge.retention.as_millis()).unwrap_or(i64::MAX);
    let days = shared.config.bridge.retention.as_secs() / 86_400;
    let mut tick = tokio::time::interval(Duration::from_secs(3_600));
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {
                match shared.store.prune(now_ms().saturating_sub(retention_ms)).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(rows = n, days, "pruned finished rows past the retention"),
                    Err(e) => tracing::warn!(error = %e, "pruning failed"),
                }
            }
        }
    }
}
