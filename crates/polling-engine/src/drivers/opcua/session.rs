//! The connection: one async-opcua session per polling group, driven on a small tokio runtime
//! shared by every OPC UA group of the process (the engine's group threads stay synchronous
//! and wait on it with a timeout).
//!
//! Reconnecting is the engine's job (with its backoff), so the library's own reconnect is off:
//! a lost session ends its event loop, the next read fails (FIXED) or [`PlcDriver::link`]
//! reports the loss (SUBSCRIPTION), and the engine connects and subscribes again.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use futures_util::StreamExt as _;
use opcua::client::{
    Client, ClientBuilder, IdentityToken, MonitoredItemMap, OnSubscriptionNotificationCore,
    Password, Session, SessionActivity, SessionPollResult,
};
use opcua::crypto::SecurityPolicy;
use opcua::types::{
    AttributeId, DataChangeFilter, DataChangeNotification, DataChangeTrigger, DeadbandType,
    EndpointDescription, ExtensionObject, MonitoredItemCreateRequest, MonitoringMode,
    MonitoringParameters, NotificationMessage, QualifiedName, ReadValueId,
    StatusChangeNotification, StatusCode, TimestampsToReturn, UserTokenType, VariableId, Variant,
};
use tag_model::Quality;
use tokio::runtime::Runtime;
use tokio::sync::watch;

use super::node_id::Namespace;
use super::values::{self, status_name, TimestampSource};
use super::{Identity, OpcUaConfig, PlannedNode};
use crate::driver::{
    Address, DriverError, LinkState, PlcDriver, ReadPlan, ReadResult, Sample, SampleResult,
    SampleSink, SubscriptionRequest,
};

/// The runtime of every OPC UA session in the process: one worker thread is plenty for the
/// protocol work (decoding, crypto of a few messages a second per session).
fn runtime() -> Result<&'static Runtime, DriverError> {
    static RUNTIME: OnceLock<Result<Runtime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("opcua")
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start the OPC UA runtime: {e}"))
        })
        .as_ref()
        .map_err(|e| DriverError::Transport(e.clone()))
}

/// Runs `future` on the runtime, giving up after `limit`.
fn run<T>(limit: Duration, what: &str, future: impl Future<Output = T>) -> Result<T, DriverError> {
    let runtime = runtime()?;
    runtime
        .block_on(async { tokio::time::timeout(limit, future).await })
        .map_err(|_| {
            DriverError::Transport(format!("{what}: no answer within {} ms", limit.as_millis()))
        })
}

/// The link state a session's event loop reports.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Link {
    Connecting,
    Up,
    Lost(String),
}

/// What the event-loop task shares with the driver.
struct Shared {
    link: watch::Sender<Link>,
    /// Where keep-alives are reported once a subscription exists (an empty batch).
    sink: Mutex<Option<SampleSink>>,
}

struct Connection {
    session: Arc<Session>,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
    /// The server's MaxNodesPerRead and MaxMonitoredItemsPerCall (0: no limit).
    max_nodes_per_read: usize,
    max_items_per_call: usize,
    /// Namespace URIs (`nsu=`) resolved to the server's indices.
    namespaces: HashMap<String, u16>,
}

pub(crate) struct OpcUaDriver {
    plc_code: Arc<str>,
    config: Arc<OpcUaConfig>,
    client: Option<Client>,
    connection: Option<Connection>,
    /// The status last logged per tag of the FIXED plan (log a change once, not every poll).
    logged: Vec<Option<String>>,
}

impl OpcUaDriver {
    pub(crate) fn new(plc_code: Arc<str>, config: Arc<OpcUaConfig>) -> Self {
        OpcUaDriver {
            plc_code,
            config,
            client: None,
            connection: None,
            logged: Vec::new(),
        }
    }

    fn endpoint(&self) -> &str {
        &self.config.endpoint
    }

    fn client(&mut self) -> Result<&mut Client, DriverError> {
        if self.client.is_none() {
            let config = &self.config;
            config
                .pki
                .prepare(&config.application())
                .map_err(DriverError::Transport)?;
            let application = config.application();
            let client = ClientBuilder::new()
                .application_name(application.application_name.to_string())
                .application_uri(config.application_uri.clone())
                .product_uri(application.product_uri.to_string())
                .pki_dir(&config.pki.dir)
                .certificate_path(&config.pki.certificate)
                .private_key_path(&config.pki.private_key)
                .create_sample_keypair(false)
                .trust_server_certs(config.trust_always)
                .session_retry_limit(0)
                .request_timeout(config.timeout)
                .publish_timeout(config.timeout.max(Duration::from_secs(10)))
                .keep_alive_interval(config.keep_alive)
                .max_failed_keep_alive_count(2)
                .session_timeout(60_000)
                .session_name(format!("buffer-oracle-writer {}", self.plc_code))
                .client()
                .map_err(|errors| {
                    DriverError::Transport(format!(
                        "the OPC UA client settings are invalid: {}",
                        errors.join("; ")
                    ))
                })?;
            self.client = Some(client);
        }
        self.client
            .as_mut()
            .ok_or_else(|| DriverError::Transport("no OPC UA client".into()))
    }

    /// The endpoint of the server matching our policy and mode, at our URL.
    async fn find_endpoint(
        client: &Client,
        config: &OpcUaConfig,
    ) -> Result<EndpointDescription, DriverError> {
        let url = config.endpoint.as_str();
        let endpoints = client
            .get_server_endpoints_from_url(url)
            .await
            .map_err(|e| DriverError::Transport(format!("{url}: GetEndpoints failed: {e}")))?;
        let wanted = config.security;
        let found = endpoints.iter().find(|e| {
            e.security_mode == wanted.mode
                && SecurityPolicy::from_uri(e.security_policy_uri.as_ref()) == wanted.policy
        });
        let Some(found) = found else {
            let offered: Vec<String> = endpoints
                .iter()
                .map(|e| {
                    super::Security {
                        policy: SecurityPolicy::from_uri(e.security_policy_uri.as_ref()),
                        mode: e.security_mode,
                    }
                    .describe()
                })
                .collect();
            return Err(DriverError::Transport(format!(
                "{url}: the server offers no {} endpoint (it offers: {})",
                wanted.describe(),
                offered.join(", ")
            )));
        };
        let token = match config.identity {
            Identity::Anonymous => UserTokenType::Anonymous,
            Identity::User { .. } => UserTokenType::UserName,
        };
        if found.find_policy(token).is_none() {
            return Err(DriverError::Transport(format!(
                "{url}: the server's {} endpoint does not accept {} (set user and password, or \
                 none)",
                wanted.describe(),
                match token {
                    UserTokenType::Anonymous => "anonymous sessions",
                    _ => "user names",
                }
            )));
        }
        let mut endpoint = found.clone();
        // Servers often advertise a host name (or port) the client cannot reach; the
        // operator's URL is the one that works.
        endpoint.endpoint_url = url.into();
        Ok(endpoint)
    }

    fn identity(&self) -> IdentityToken {
        match &self.config.identity {
            Identity::Anonymous => IdentityToken::Anonymous,
            Identity::User { name, password } => {
                IdentityToken::UserName(name.clone(), Password::new(password.clone()))
            }
        }
    }

    fn open_session(&mut self) -> Result<Connection, DriverError> {
        let config = Arc::clone(&self.config);
        let identity = self.identity();
        let client = self.client()?;
        let endpoint = run(config.connect_timeout, &config.endpoint, async {
            Self::find_endpoint(client, &config).await
        })??;
        let server_certificate = endpoint.server_certificate.clone();
        let (session, event_loop) = client
            .connect_to_endpoint_directly(endpoint, identity)
            .map_err(|e| DriverError::Transport(format!("{}: {e}", config.endpoint)))?;
        // The engine reconnects with its own backoff; a lost session ends here.
        session.disable_reconnects();
        let (link, mut watch) = watch::channel(Link::Connecting);
        let shared = Arc::new(Shared {
            link,
            sink: Mutex::new(None),
        });
        let task = runtime()?.spawn(drive(event_loop, Arc::clone(&shared)));
        let connection = Connection {
            session,
            shared,
            task,
            max_nodes_per_read: 0,
            max_items_per_call: 0,
            namespaces: HashMap::new(),
        };
        let up = run(config.connect_timeout, &config.endpoint, async {
            let state = watch
                .wait_for(|link| !matches!(link, Link::Connecting))
                .await
                .map(|link| link.clone());
            match state {
                Ok(Link::Up) => Ok(()),
                Ok(Link::Lost(reason)) => Err(reason),
                _ => Err("the session ended".to_owned()),
            }
        });
        let failure = match up {
            Ok(Ok(())) => None,
            Ok(Err(reason)) => Some(DriverError::Transport(format!(
                "{}: {reason}",
                config.endpoint
            ))),
            Err(error) => Some(error),
        };
        if let Some(error) = failure {
            close(connection);
            let text = error.to_string();
            if text.contains("BadCertificateUntrusted") {
                return Err(DriverError::Transport(format!(
                    "{}: {}",
                    config.endpoint,
                    config.pki.untrusted_hint(&server_certificate)
                )));
            }
            return Err(error);
        }
        Ok(connection)
    }

    /// The server's operation limits (0 when it does not say).
    fn read_limits(&self, connection: &mut Connection) {
        let nodes: Vec<ReadValueId> = [
            VariableId::Server_ServerCapabilities_OperationLimits_MaxNodesPerRead,
            VariableId::Server_ServerCapabilities_OperationLimits_MaxMonitoredItemsPerCall,
        ]
        .into_iter()
        .map(|id| ReadValueId::from(opcua::types::NodeId::from(id)))
        .collect();
        let session = Arc::clone(&connection.session);
        let read = run(self.config.timeout, self.endpoint(), async move {
            session.read(&nodes, TimestampsToReturn::Neither, 0.0).await
        });
        let limit =
            |value: Option<&opcua::types::DataValue>| match value.and_then(|v| v.value.as_ref()) {
                Some(Variant::UInt32(n)) => *n as usize,
                _ => 0,
            };
        if let Ok(Ok(values)) = read {
            connection.max_nodes_per_read = limit(values.first());
            connection.max_items_per_call = limit(values.get(1));
        }
        if connection.max_nodes_per_read > 0 || connection.max_items_per_call > 0 {
            log::debug!(
                "PLC {}: the server allows {} nodes per Read, {} monitored items per call (0: no \
                 limit)",
                self.plc_code,
                connection.max_nodes_per_read,
                connection.max_items_per_call
            );
        }
    }

    /// The ReadValueIds of `nodes`, with `nsu=` namespaces resolved (read once per URI).
    fn resolve(
        &mut self,
        nodes: &[PlannedNode],
    ) -> Result<Vec<Result<ReadValueId, DriverError>>, DriverError> {
        let timeout = self.config.timeout;
        let endpoint = self.config.endpoint.clone();
        let connection = self
            .connection
            .as_mut()
            .ok_or_else(|| DriverError::Transport(format!("{endpoint}: not connected")))?;
        let unresolved: Vec<&str> = nodes
            .iter()
            .filter_map(|n| match &n.node.namespace {
                Namespace::Uri(uri) if !connection.namespaces.contains_key(uri) => {
                    Some(uri.as_str())
                }
                _ => None,
            })
            .collect();
        if !unresolved.is_empty() {
            let session = Arc::clone(&connection.session);
            let map = run(timeout, &endpoint, async move {
                session.read_namespace_array().await
            })?
            .map_err(|e| {
                DriverError::Transport(format!("{endpoint}: cannot read the NamespaceArray: {e}"))
            })?;
            for uri in unresolved {
                if let Some(index) = map.get_index(uri) {
                    connection.namespaces.insert(uri.to_owned(), index);
                }
            }
        }
        Ok(nodes
            .iter()
            .map(|n| {
                let index = match &n.node.namespace {
                    Namespace::Index(index) => *index,
                    Namespace::Uri(uri) => {
                        *connection
                            .namespaces
                            .get(uri)
                            .ok_or_else(|| DriverError::Device {
                                code: StatusCode::BadNodeIdUnknown.bits(),
                                message: format!(
                                    "{}: the server has no namespace {uri:?} in its NamespaceArray",
                                    n.text
                                ),
                            })?
                    }
                };
                Ok(ReadValueId {
                    node_id: n.node.node_id(index),
                    attribute_id: AttributeId::Value as u32,
                    index_range: Default::default(),
                    data_encoding: QualifiedName::null(),
                })
            })
            .collect())
    }

    /// Logs a tag's status when it changes (the status name is what operators look up).
    fn log_status(&mut self, index: usize, text: &str, result: &Result<Sample, DriverError>) {
        if self.logged.len() <= index {
            self.logged.resize(index + 1, None);
        }
        let now = status_text(result);
        if self.logged[index] != now {
            log_change(
                &self.plc_code,
                text,
                self.logged[index].as_deref(),
                now.as_deref(),
            );
            self.logged[index] = now;
        }
    }
}

/// None for GOOD; the reason otherwise.
fn status_text(result: &Result<Sample, DriverError>) -> Option<String> {
    match result {
        Ok(sample) if sample.quality == Quality::Good => None,
        Ok(sample) => Some(format!("{:?}", sample.quality).to_uppercase()),
        Err(error) => Some(error.to_string()),
    }
}

fn log_change(plc: &str, node: &str, before: Option<&str>, now: Option<&str>) {
    match now {
        None => log::info!(
            "PLC {plc}: {node} is GOOD again (was: {})",
            before.unwrap_or("")
        ),
        Some("UNCERTAIN") => {
            log::warn!(
                "PLC {plc}: {node}: the server flags the value as uncertain; stored as UNCERTAIN"
            )
        }
        Some(reason) => log::warn!("PLC {plc}: {node}: {reason}; stored as BAD"),
    }
}

/// Drives a session's event loop, reporting its state to the driver; keep-alives go to the
/// subscription's sink as empty batches.
async fn drive<T>(event_loop: opcua::client::SessionEventLoop<T>, shared: Arc<Shared>)
where
    T: opcua::client::transport::Connector + Send + Sync + 'static,
{
    let mut stream = std::pin::pin!(event_loop.enter());
    // Failed keep-alives in a row: the reason a hung server's session ends.
    let mut failed_keep_alives: Vec<String> = Vec::new();
    let ended = loop {
        match stream.next().await {
            Some(Ok(SessionPollResult::Reconnected(_))) => {
                shared.link.send_replace(Link::Up);
            }
            Some(Ok(SessionPollResult::ConnectionLost(status))) => {
                break format!("connection lost: {}", status_name(status));
            }
            Some(Ok(SessionPollResult::SessionActivity(SessionActivity::KeepAliveSucceeded))) => {
                failed_keep_alives.clear();
                let sink = shared
                    .sink
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone();
                if let Some(sink) = sink {
                    sink(Vec::new());
                }
            }
            Some(Ok(SessionPollResult::SessionActivity(SessionActivity::KeepAliveFailed(
                status,
            )))) => {
                log::debug!("OPC UA keep-alive failed: {}", status_name(status));
                failed_keep_alives.push(status_name(status));
            }
            Some(Ok(_)) => {}
            Some(Err(status)) => break status_name(status),
            None if failed_keep_alives.is_empty() => break "the session was closed".to_owned(),
            None => {
                break format!(
                    "the server did not answer {} keep-alives in a row ({}); the session was \
                     closed",
                    failed_keep_alives.len(),
                    failed_keep_alives.join(", ")
                )
            }
        }
    };
    shared.link.send_replace(Link::Lost(ended));
}

/// Ends a session within half a second: CloseSession if the server still answers.
fn close(connection: Connection) {
    let Connection { session, task, .. } = connection;
    let _ = run(
        Duration::from_millis(300),
        "closing the session",
        async move {
            let _ = session.disconnect().await;
        },
    );
    task.abort();
}

impl PlcDriver for OpcUaDriver {
    fn connect(&mut self) -> Result<(), DriverError> {
        if let Some(connection) = self.connection.take() {
            close(connection);
        }
        let mut connection = self.open_session()?;
        self.read_limits(&mut connection);
        log::info!(
            "PLC {}: OPC UA session open to {} ({}, {})",
            self.plc_code,
            self.config.endpoint,
            self.config.security.describe(),
            match &self.config.identity {
                Identity::Anonymous => "anonymous".to_owned(),
                Identity::User { name, .. } => format!("user {name}"),
            }
        );
        self.connection = Some(connection);
        Ok(())
    }

    fn read(&mut self, plan: &ReadPlan) -> ReadResult {
        self.read_samples(plan).map(|samples| {
            samples
                .into_iter()
                .map(|r| {
                    r.and_then(|s| {
                        s.value.ok_or_else(|| DriverError::Device {
                            code: StatusCode::BadNoData.bits(),
                            message: "no value".into(),
                        })
                    })
                })
                .collect()
        })
    }

    fn read_samples(&mut self, plan: &ReadPlan) -> SampleResult {
        let Some(nodes) = plan.inner::<Vec<PlannedNode>>() else {
            return Err(DriverError::Protocol(format!(
                "{}: a read plan of another driver was given to the opcua driver",
                self.plc_code
            )));
        };
        let ids = self.resolve(nodes)?;
        let endpoint = self.config.endpoint.clone();
        let (timeout, source) = (self.config.timeout, self.config.timestamp);
        let Some(connection) = self.connection.as_ref() else {
            return Err(DriverError::Transport(format!("{endpoint}: not connected")));
        };
        if let Link::Lost(reason) = &*connection.shared.link.borrow() {
            return Err(DriverError::Transport(format!("{endpoint}: {reason}")));
        }
        let mut read: Vec<Option<Result<Sample, DriverError>>> = Vec::with_capacity(nodes.len());
        let mut wanted: Vec<(usize, ReadValueId)> = Vec::with_capacity(nodes.len());
        for (index, id) in ids.into_iter().enumerate() {
            match id {
                Ok(id) => {
                    wanted.push((index, id));
                    read.push(None);
                }
                Err(error) => read.push(Some(Err(error))),
            }
        }
        let chunk = match connection.max_nodes_per_read {
            0 => wanted.len().max(1),
            n => n,
        };
        for part in wanted.chunks(chunk) {
            let request: Vec<ReadValueId> = part.iter().map(|(_, id)| id.clone()).collect();
            let session = Arc::clone(&connection.session);
            let answer = run(
                timeout + Duration::from_millis(500),
                &endpoint,
                async move { session.read(&request, TimestampsToReturn::Both, 0.0).await },
            )?
            .map_err(|e| DriverError::Transport(format!("{endpoint}: Read failed: {e}")))?;
            if answer.len() != part.len() {
                return Err(DriverError::Protocol(format!(
                    "{endpoint}: asked for {} values, the server answered {}",
                    part.len(),
                    answer.len()
                )));
            }
            for ((index, _), value) in part.iter().zip(&answer) {
                read[*index] = Some(values::sample(value, source));
            }
        }
        let mut results = Vec::with_capacity(nodes.len());
        for (index, slot) in read.into_iter().enumerate() {
            let result = slot.unwrap_or_else(|| Err(DriverError::Protocol("not read".into())));
            self.log_status(index, &nodes[index].text, &result);
            results.push(result);
        }
        Ok(results)
    }

    fn subscribe(
        &mut self,
        plan: &ReadPlan,
        request: &SubscriptionRequest,
        sink: SampleSink,
    ) -> Result<(), DriverError> {
        let Some(nodes) = plan.inner::<Vec<PlannedNode>>() else {
            return Err(DriverError::Protocol(format!(
                "{}: a read plan of another driver was given to the opcua driver",
                self.plc_code
            )));
        };
        let ids = self.resolve(nodes)?;
        let endpoint = self.config.endpoint.clone();
        let config = Arc::clone(&self.config);
        let plc = Arc::clone(&self.plc_code);
        let Some(connection) = self.connection.as_ref() else {
            return Err(DriverError::Transport(format!("{endpoint}: not connected")));
        };
        let publishing = request.publishing_interval;
        // A keep-alive at least every ~10 s; the server drops the subscription after
        // `lifetime` silent intervals.
        let keep_alive_count = (Duration::from_secs(10).as_millis() / publishing.as_millis().max(1))
            .clamp(1, 1000) as u32;
        let sampling_ms = request.sampling_interval.as_secs_f64() * 1000.0;
        // Every sample taken between two publishes is kept (no loss when the server samples
        // faster than it publishes).
        let queue_size = (publishing.as_secs_f64() * 1000.0 / sampling_ms.max(1.0))
            .ceil()
            .clamp(1.0, 1000.0) as u32;
        let mut failed: Vec<(usize, Sample)> = Vec::new();
        let mut items: Vec<(usize, MonitoredItemCreateRequest)> = Vec::new();
        for (index, id) in ids.into_iter().enumerate() {
            match id {
                Ok(id) => {
                    let filter = match request.deadbands.get(index).copied().flatten() {
                        Some(band) => ExtensionObject::from_message(DataChangeFilter {
                            trigger: DataChangeTrigger::StatusValue,
                            deadband_type: DeadbandType::Absolute as u32,
                            deadband_value: band,
                        }),
                        None => ExtensionObject::null(),
                    };
                    items.push((
                        index,
                        MonitoredItemCreateRequest {
                            item_to_monitor: id,
                            monitoring_mode: MonitoringMode::Reporting,
                            requested_parameters: MonitoringParameters {
                                client_handle: handle(index),
                                sampling_interval: sampling_ms,
                                filter,
                                queue_size,
                                discard_oldest: true,
                            },
                        },
                    ));
                }
                Err(error) => {
                    log::warn!("PLC {plc}: {}: {error}; stored as BAD", nodes[index].text);
                    failed.push((index, bad_now()));
                }
            }
        }
        let texts: Vec<Arc<str>> = nodes.iter().map(|n| Arc::clone(&n.text)).collect();
        let callback = Notifications {
            plc: Arc::clone(&plc),
            texts: texts.clone(),
            sink: Arc::clone(&sink),
            source: config.timestamp,
            logged: vec![None; nodes.len()],
            shared: Arc::clone(&connection.shared),
        };
        let session = Arc::clone(&connection.session);
        let per_call = match connection.max_items_per_call {
            0 => 1000,
            n => n,
        };
        let total = items.len();
        let limit = config.connect_timeout.max(config.timeout * 4);
        let created = run(limit, &endpoint, async move {
            let id = session
                .create_subscription(
                    publishing,
                    keep_alive_count * 3,
                    keep_alive_count,
                    0,
                    0,
                    true,
                    callback,
                )
                .await?;
            let mut refused = Vec::new();
            for part in items.chunks(per_call) {
                let requests = part.iter().map(|(_, r)| r.clone()).collect();
                let results = session
                    .create_monitored_items(id, TimestampsToReturn::Both, requests)
                    .await?;
                for ((index, _), result) in part.iter().zip(results) {
                    let status = result.result.status_code;
                    if status.is_bad() {
                        refused.push((*index, status));
                    }
                }
            }
            Ok::<_, opcua::types::Error>(refused)
        })?
        .map_err(|e| {
            DriverError::Transport(format!("{endpoint}: creating the subscription failed: {e}"))
        })?;
        for (index, status) in &created {
            log::warn!(
                "PLC {plc}: {}: the server refused to monitor it: {}; stored as BAD",
                texts[*index],
                status_name(*status)
            );
            failed.push((*index, bad_now()));
        }
        if !failed.is_empty() {
            sink(failed);
        }
        if total > 0 && created.len() == total {
            return Err(DriverError::Device {
                code: created[0].1.bits(),
                message: format!("the server refused all {total} monitored items"),
            });
        }
        *connection
            .shared
            .sink
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(sink);
        Ok(())
    }

    fn link(&mut self) -> LinkState {
        match &self.connection {
            None => LinkState::Lost("not connected".into()),
            Some(connection) => match &*connection.shared.link.borrow() {
                Link::Lost(reason) => {
                    LinkState::Lost(format!("{}: {reason}", self.config.endpoint))
                }
                _ => LinkState::Up,
            },
        }
    }

    fn write(&mut self, address: &Address, value: f64) -> Result<(), DriverError> {
        let _ = value;
        Err(DriverError::Device {
            code: StatusCode::BadNotWritable.bits(),
            message: format!(
                "{}: the opcua driver does not write (handshake acks need a register PLC)",
                address.text()
            ),
        })
    }

    fn disconnect(&mut self) {
        if let Some(connection) = self.connection.take() {
            close(connection);
        }
    }
}

impl Drop for OpcUaDriver {
    fn drop(&mut self) {
        self.disconnect();
    }
}

/// Client handles: index + 1 (0 means "assign one" to the library).
fn handle(index: usize) -> u32 {
    index as u32 + 1
}

fn bad_now() -> Sample {
    Sample {
        value: None,
        quality: Quality::Bad,
        timestamp: None,
    }
}

/// A subscription's callback: each data change is one sample, the batch of one publish goes
/// to the sink in one call.
struct Notifications {
    plc: Arc<str>,
    texts: Vec<Arc<str>>,
    sink: SampleSink,
    source: TimestampSource,
    logged: Vec<Option<String>>,
    shared: Arc<Shared>,
}

impl OnSubscriptionNotificationCore for Notifications {
    fn on_subscription_notification(
        &mut self,
        notification: NotificationMessage,
        _items: MonitoredItemMap<'_>,
    ) {
        let mut batch = Vec::new();
        for data in notification.notification_data.into_iter().flatten() {
            if let Some(change) = data.inner_as::<DataChangeNotification>() {
                for item in change.monitored_items.iter().flatten() {
                    let Some(index) = (item.client_handle as usize).checked_sub(1) else {
                        continue;
                    };
                    let Some(text) = self.texts.get(index) else {
                        continue;
                    };
                    let result = values::sample(&item.value, self.source);
                    let now = status_text(&result);
                    if self.logged[index] != now {
                        log_change(
                            &self.plc,
                            text,
                            self.logged[index].as_deref(),
                            now.as_deref(),
                        );
                        self.logged[index] = now;
                    }
                    let sample = result.unwrap_or_else(|_| Sample {
                        value: None,
                        quality: Quality::Bad,
                        timestamp: values::timestamp(&item.value, self.source),
                    });
                    batch.push((index, sample));
                }
            } else if let Some(change) = data.inner_as::<StatusChangeNotification>() {
                if change.status.is_bad() {
                    self.shared.link.send_replace(Link::Lost(format!(
                        "the server ended the subscription: {}",
                        status_name(change.status)
                    )));
                }
            }
        }
        (self.sink)(batch);
    }
}
