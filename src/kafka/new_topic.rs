//! A producer's topic that the brokers call missing at start-up: final, or
//! being created? A broker that creates topics on demand
//! (`auto.create.topics.enable=true`, Kafka's default) may still answer
//! "unknown topic" to the metadata request that started the creation, so
//! "missing" is final only where nothing will create the topic. We ask the
//! broker for that setting (DescribeConfigs) and, where it creates topics
//! (or will not say), ask for the topic again for a bounded time.

use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
use rdkafka::client::Client;

use super::topic_check::{check_topic, TopicCheck};
use super::{describe, ClientLog, KafkaConfig, QUERY_TIMEOUT};

/// How long a topic the brokers create on demand may take to appear.
const CREATION_WAIT: Duration = Duration::from_secs(10);

/// Between two metadata requests while a topic is being created.
const RETRY_EVERY: Duration = Duration::from_millis(100);

/// Whether the brokers create the producer's topic when it is missing.
#[derive(Debug, Clone, PartialEq, Eq)]
enum AutoCreate {
    /// They do: the topic is on its way.
    On,
    /// They do not; why, as the end of the error line.
    Off(String),
    /// Their setting could not be read; why.
    Unknown(String),
}

/// The check of `topic` once the brokers' first "missing" is settled: not
/// `Missing` if the topic appeared; else the complete error line.
/// Blocks (up to [`CREATION_WAIT`] plus the queries): call it off the
/// runtime's workers.
pub(crate) fn settle_missing<C: rdkafka::ClientContext>(
    client: &Client<C>,
    log: &ClientLog,
    config: &KafkaConfig,
    topic: &str,
) -> Result<TopicCheck, String> {
    let missing = format!("topic `{topic}` does not exist on {}", config.brokers);
    let auto_create = auto_create(config, topic);
    let waited = match &auto_create {
        AutoCreate::Off(why) => return Err(format!("{missing} ({why}); create it first")),
        AutoCreate::On | AutoCreate::Unknown(_) => {
            let deadline = Instant::now() + CREATION_WAIT;
            loop {
                let check = check_topic(client, log, Some(topic), QUERY_TIMEOUT);
                if check != TopicCheck::Missing {
                    return Ok(check);
                }
                if Instant::now() >= deadline {
                    break CREATION_WAIT.as_secs();
                }
                std::thread::sleep(RETRY_EVERY);
            }
        }
    };
    Err(match auto_create {
        AutoCreate::Unknown(why) => format!(
            "{missing} (and was not created within {waited} s; \
             the brokers' auto.create.topics.enable could not be read: {why})"
        ),
        _ => format!(
            "{missing} (the brokers create topics on demand, \
             but it was not there after {waited} s)"
        ),
    })
}

/// Asks the broker that answers whether it creates topics on demand. A
/// `-X allow.auto.create.topics=false` answers for it: librdkafka then
/// asks no broker to create anything.
fn auto_create(config: &KafkaConfig, topic: &str) -> AutoCreate {
    let refused_by_client = config
        .settings
        .iter()
        .rev()
        .find(|(key, _)| key == "allow.auto.create.topics")
        .is_some_and(|(_, value)| value.trim().eq_ignore_ascii_case("false"));
    if refused_by_client {
        return AutoCreate::Off(
            "and -X allow.auto.create.topics=false asks the brokers not to create it".into(),
        );
    }
    let admin: AdminClient<ClientLog> = match config
        .client_config(&[])
        .create_with_context(ClientLog::new("sink", &config.brokers))
    {
        Ok(admin) => admin,
        Err(error) => return AutoCreate::Unknown(describe(&error)),
    };
    // The broker that answered, unless that was the bootstrap connection,
    // whose id is not known yet (-1, which DescribeConfigs refuses).
    let broker = match admin.inner().fetch_metadata(Some(topic), QUERY_TIMEOUT) {
        Ok(metadata) => match metadata.orig_broker_id() {
            id if id >= 0 => id,
            _ => match metadata.brokers().first() {
                Some(broker) => broker.id(),
                None => return AutoCreate::Unknown("the metadata lists no broker".into()),
            },
        },
        Err(error) => return AutoCreate::Unknown(describe(&error)),
    };
    let options = AdminOptions::new().request_timeout(Some(QUERY_TIMEOUT));
    let resources = [ResourceSpecifier::Broker(broker)];
    let answer = futures::executor::block_on(admin.describe_configs(&resources, &options));
    let setting = match answer.as_deref() {
        Ok([Ok(resource)]) => resource
            .get("auto.create.topics.enable")
            .and_then(|entry| entry.value.clone()),
        Ok([Err(code)]) => return AutoCreate::Unknown(code.to_string()),
        Ok(_) => None,
        Err(error) => return AutoCreate::Unknown(describe(error)),
    };
    match setting.as_deref() {
        Some("true") => AutoCreate::On,
        Some("false") => AutoCreate::Off(format!(
            "and the brokers do not create topics: auto.create.topics.enable=false on broker {broker}"
        )),
        _ => AutoCreate::Unknown(format!("broker {broker} did not list it")),
    }
}
