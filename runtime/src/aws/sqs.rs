//! SQS: discovery (ListQueues with MaxResults and NextToken) and the data plane's calls.

#![allow(
    clippy::disallowed_types,
    reason = "the SDK's attribute maps are HashMaps; they are converted to BTreeMaps at once"
)]

use super::backend::AwsBackend;
use super::client;
use super::sdk_error::sdk_error;
use crate::backend::{AttributeData, AttributeValue, Message, QueueList, QueuePage, Receive, Sqs};
use crate::error::BackendError;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry,
    MessageSystemAttributeName,
};
use sqsbalancer_core::QueueId;
use std::collections::BTreeMap;
use std::future::Future;

/// The error codes SQS answers a missing queue with: the JSON protocol's error type, and the
/// query protocol's code that SQS also sends (`x-amzn-query-error`) for older clients.
const GONE_CODES: [&str; 2] = [
    "QueueDoesNotExist",
    "AWS.SimpleQueueService.NonExistentQueue",
];

/// A call on one queue failed: gone (as the SDK models it, or by its error code when the SDK
/// leaves it unmodelled), or as [`sdk_error`] says.
fn queue_error<E>(
    queue: &QueueId,
    e: &aws_sdk_sqs::error::SdkError<E>,
    gone: impl Fn(&E) -> bool,
) -> BackendError
where
    E: std::error::Error + aws_sdk_sqs::error::ProvideErrorMetadata + 'static,
{
    let by_code = e
        .as_service_error()
        .and_then(|s| s.code())
        .is_some_and(|c| GONE_CODES.contains(&c));
    if by_code || e.as_service_error().is_some_and(gone) {
        BackendError::QueueDoesNotExist {
            url: queue.as_str().to_owned(),
        }
    } else {
        sdk_error("sqs", e)
    }
}

impl QueueList for AwsBackend {
    fn list(
        &self,
        prefix: String,
        next_token: Option<String>,
    ) -> impl Future<Output = Result<QueuePage, BackendError>> + Send {
        let client = self.sqs.clone();
        async move {
            let mut call = client
                .list_queues()
                .max_results(1000)
                .set_next_token(next_token);
            if !prefix.is_empty() {
                call = call.queue_name_prefix(prefix);
            }
            let out = call.send().await.map_err(|e| sdk_error("sqs", &e))?;
            Ok(QueuePage {
                urls: out.queue_urls().to_vec(),
                next_token: out.next_token().map(str::to_owned),
            })
        }
    }
}

impl Sqs for AwsBackend {
    fn receive(
        &self,
        request: Receive,
    ) -> impl Future<Output = Result<Vec<Message>, BackendError>> + Send {
        let client = self.sqs.clone();
        async move {
            let out = client
                .receive_message()
                .queue_url(request.queue.as_str())
                .max_number_of_messages(request.max.clamp(1, 10) as i32)
                .visibility_timeout(request.visibility_secs as i32)
                .wait_time_seconds(request.wait.as_secs().min(20) as i32)
                .set_message_attribute_names(Some(request.attribute_names.clone()))
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .customize()
                .config_override(client::receive_override(&request))
                .interceptor(client::SendBy(request.send_by))
                .send()
                .await;
            let out =
                out.map_err(|e| queue_error(&request.queue, &e, |s| s.is_queue_does_not_exist()))?;
            Ok(out
                .messages()
                .iter()
                .map(|m| message_of(&request.queue, m))
                .collect())
        }
    }

    fn delete_batch(
        &self,
        queue: QueueId,
        receipts: Vec<String>,
    ) -> impl Future<Output = Result<Vec<Result<(), String>>, BackendError>> + Send {
        let client = self.sqs.clone();
        async move {
            let mut entries = Vec::with_capacity(receipts.len());
            for (i, r) in receipts.iter().enumerate() {
                let entry = DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(r)
                    .build()
                    .map_err(|e| BackendError::Refused {
                        service: "sqs",
                        reason: e.to_string(),
                    })?;
                entries.push(entry);
            }
            let out = client
                .delete_message_batch()
                .queue_url(queue.as_str())
                .set_entries(Some(entries))
                .send()
                .await;
            let out = out.map_err(|e| queue_error(&queue, &e, |s| s.is_queue_does_not_exist()))?;
            Ok(entry_results(receipts.len(), out.failed()))
        }
    }

    fn change_visibility_batch(
        &self,
        queue: QueueId,
        entries: Vec<(String, u32)>,
    ) -> impl Future<Output = Result<Vec<Result<(), String>>, BackendError>> + Send {
        let client = self.sqs.clone();
        async move {
            let mut request = Vec::with_capacity(entries.len());
            for (i, (receipt, secs)) in entries.iter().enumerate() {
                let entry = ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(receipt)
                    .visibility_timeout(*secs as i32)
                    .build()
                    .map_err(|e| BackendError::Refused {
                        service: "sqs",
                        reason: e.to_string(),
                    })?;
                request.push(entry);
            }
            let out = client
                .change_message_visibility_batch()
                .queue_url(queue.as_str())
                .set_entries(Some(request))
                .send()
                .await;
            let out = out.map_err(|e| queue_error(&queue, &e, |s| s.is_queue_does_not_exist()))?;
            Ok(entry_results(entries.len(), out.failed()))
        }
    }
}

/// Per-entry results of a batch call of `n` entries whose ids are their indexes: `Ok` unless
/// the service listed the entry as failed.
fn entry_results(
    n: usize,
    failed: &[aws_sdk_sqs::types::BatchResultErrorEntry],
) -> Vec<Result<(), String>> {
    let mut results: Vec<Result<(), String>> = vec![Ok(()); n];
    for f in failed {
        if let Ok(i) = f.id().parse::<usize>()
            && i < results.len()
        {
            results[i] = Err(format!("{}: {}", f.code(), f.message().unwrap_or_default()));
        }
    }
    results
}

/// A received SDK message as the data plane's [`Message`]: every system attribute SQS returned,
/// and every message attribute with its data type (binary values as bytes).
fn message_of(queue: &QueueId, m: &aws_sdk_sqs::types::Message) -> Message {
    let system: BTreeMap<String, String> = m
        .attributes()
        .map(|a| {
            a.iter()
                .map(|(k, v)| (k.as_str().to_owned(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    let attributes = m
        .message_attributes()
        .map(|a| {
            a.iter()
                .filter_map(|(k, v)| Some((k.clone(), attribute_of(v)?)))
                .collect()
        })
        .unwrap_or_default();
    Message {
        queue: queue.clone(),
        message_id: m.message_id().unwrap_or_default().to_owned(),
        receipt: m.receipt_handle().unwrap_or_default().to_owned(),
        body: m.body().unwrap_or_default().to_owned(),
        receive_count: system
            .get("ApproximateReceiveCount")
            .and_then(|c| c.parse().ok())
            .unwrap_or(1),
        group: system.get("MessageGroupId").cloned(),
        attributes,
        system,
    }
}

/// One SDK message attribute, typed; `None` for one with no value.
fn attribute_of(v: &aws_sdk_sqs::types::MessageAttributeValue) -> Option<AttributeValue> {
    let value = match (v.string_value(), v.binary_value()) {
        (Some(text), _) => AttributeData::Text(text.to_owned()),
        (None, Some(blob)) => AttributeData::Binary(blob.as_ref().to_vec()),
        (None, None) => return None,
    };
    Some(AttributeValue {
        data_type: v.data_type().to_owned(),
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::canned::{
        NoCredentials, StallingCredentials, backend, backend_with, error, error_with_header, ok,
        production_backend,
    };
    use aws_credential_types::provider::SharedCredentialsProvider;
    use aws_sdk_sqs::config::Credentials;
    use aws_smithy_http_client::test_util::StaticReplayClient;
    use sqsbalancer_core::{Outcome, Reply};
    use std::time::Duration;

    const BASE: &str = "https://sqs.us-east-1.amazonaws.com/123456789012";

    /// A ListQueues answer with queues `q-from`..`q-to` and maybe a next token.
    fn page(from: usize, to: usize, token: Option<&str>) -> String {
        let urls: Vec<String> = (from..to).map(|i| format!("\"{BASE}/q-{i:04}\"")).collect();
        let token = token.map_or(String::new(), |t| format!(",\"NextToken\":\"{t}\""));
        format!("{{\"QueueUrls\":[{}]{token}}}", urls.join(","))
    }

    fn receive(queue: &str) -> Receive {
        Receive {
            queue: QueueId::new(&format!("{BASE}/{queue}")).expect("valid"),
            max: 10,
            visibility_secs: 30,
            wait: Duration::ZERO,
            attribute_names: vec!["All".into()],
            send_by: tokio::time::Instant::now() + Duration::from_secs(60),
            attempt_timeout: Duration::from_secs(5),
        }
    }

    #[tokio::test]
    async fn discovery_follows_next_token_past_a_thousand_queues() {
        // moto ignores NextToken, so the adapter's paging is proven on canned SQS answers.
        let replay = StaticReplayClient::new(vec![
            ok(&page(0, 1000, Some("page-2"))),
            ok(&page(1000, 1100, None)),
        ]);
        let creds =
            SharedCredentialsProvider::new(Credentials::new("id", "secret", None, None, "t"));
        let aws = backend_with(replay.clone(), Vec::new(), creds);
        let outcome = crate::execute::list(&aws, "q-").await;
        let Outcome::Applied(Reply::Queues(found)) = outcome else {
            panic!("listing failed: {outcome:?}");
        };
        assert_eq!(found.len(), 1100);
        assert_eq!(found[1099].as_str(), format!("{BASE}/q-1099"));
        let bodies: Vec<String> = replay
            .actual_requests()
            .map(|r| String::from_utf8_lossy(r.body().bytes().unwrap_or_default()).into_owned())
            .collect();
        assert_eq!(bodies.len(), 2, "{bodies:?}");
        for body in &bodies {
            assert!(body.contains("\"MaxResults\":1000"), "{body}");
            assert!(body.contains("\"QueueNamePrefix\":\"q-\""), "{body}");
        }
        assert!(!bodies[0].contains("NextToken"), "{}", bodies[0]);
        assert!(
            bodies[1].contains("\"NextToken\":\"page-2\""),
            "{}",
            bodies[1]
        );
    }

    #[tokio::test]
    async fn missing_credentials_are_their_own_error_and_nothing_is_sent() {
        let replay = StaticReplayClient::new(Vec::new());
        let creds = SharedCredentialsProvider::new(NoCredentials);
        let aws = backend_with(replay.clone(), Vec::new(), creds);
        let e = aws
            .list("q-".to_owned(), None)
            .await
            .expect_err("no credentials");
        assert!(
            matches!(e, BackendError::Credentials { service: "sqs", .. }),
            "{e:?}"
        );
        assert!(e.to_string().contains("no profile, no role"), "{e}");
        assert_eq!(replay.actual_requests().count(), 0);
    }

    /// A receive that the production client makes, waiting `wait`, sendable for `within`.
    fn long_poll(wait: Duration, within: Duration) -> Receive {
        let t = crate::Timeouts::default();
        Receive {
            wait,
            send_by: crate::clock::now() + within,
            attempt_timeout: t.receive_attempt(wait),
            ..receive("q")
        }
    }

    #[tokio::test]
    async fn a_receive_answered_500_is_never_sent_again() {
        // The client retries other calls (three attempts); a long poll sent again would be a
        // second long poll nobody planned against the fence.
        let replay = StaticReplayClient::new(vec![
            error(500, "com.amazonaws.sqs#InternalError", "try again"),
            ok("{\"Messages\":[]}"),
        ]);
        let creds =
            SharedCredentialsProvider::new(Credentials::new("id", "secret", None, None, "t"));
        let aws = production_backend(replay.clone(), creds);
        let e = aws
            .receive(long_poll(Duration::from_secs(20), Duration::from_secs(60)))
            .await
            .expect_err("the 500");
        assert!(matches!(e, BackendError::Unknown { .. }), "{e:?}");
        assert_eq!(replay.actual_requests().count(), 1, "sent again");
        // Another call is retried: the second canned answer serves its second attempt.
        let replay = StaticReplayClient::new(vec![
            error(500, "com.amazonaws.sqs#InternalError", "try again"),
            ok(&page(0, 1, None)),
        ]);
        let creds =
            SharedCredentialsProvider::new(Credentials::new("id", "secret", None, None, "t"));
        let aws = production_backend(replay.clone(), creds);
        aws.list("q-".into(), None).await.expect("retried");
        assert_eq!(replay.actual_requests().count(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_receive_held_past_its_send_by_time_is_never_sent() {
        // The credentials take 3 s to refresh after the poller checked its fence; the request
        // could leave 2 s after its send-by time, and its long poll would outlive the fence.
        let replay = StaticReplayClient::new(vec![ok("{\"Messages\":[]}")]);
        let creds = SharedCredentialsProvider::new(StallingCredentials {
            stall: Duration::from_secs(3),
        });
        let aws = production_backend(replay.clone(), creds);
        let e = aws
            .receive(long_poll(Duration::from_secs(10), Duration::from_secs(1)))
            .await
            .expect_err("held");
        assert!(
            matches!(e, BackendError::NotSent { service: "sqs", .. }),
            "{e:?}"
        );
        assert_eq!(
            replay.actual_requests().count(),
            0,
            "sent after its send-by time"
        );
    }

    #[tokio::test]
    async fn a_receive_planned_before_a_suspend_that_outlasts_its_send_by_time_is_never_sent() {
        // tokio's clock stands still while the machine is suspended; the fence's does not.
        let replay = StaticReplayClient::new(vec![ok("{\"Messages\":[]}")]);
        let creds =
            SharedCredentialsProvider::new(Credentials::new("id", "secret", None, None, "t"));
        let aws = production_backend(replay.clone(), creds);
        let request = long_poll(Duration::from_secs(10), Duration::from_secs(5));
        crate::clock::pretend::suspend(Duration::from_secs(60));
        let e = aws.receive(request).await.expect_err("suspended");
        assert!(
            matches!(e, BackendError::NotSent { service: "sqs", .. }),
            "{e:?}"
        );
        assert_eq!(replay.actual_requests().count(), 0, "sent after a suspend");
    }

    #[tokio::test]
    async fn a_missing_queue_a_throttle_and_a_lost_connection_map_to_their_kinds() {
        // As SQS answers: the JSON error type and the query-compatible code in a header.
        let gone = error_with_header(
            "com.amazonaws.sqs#QueueDoesNotExist",
            "AWS.SimpleQueueService.NonExistentQueue;Sender",
        );
        // As an emulator may answer: the JSON error type alone.
        let gone_bare = error(400, "com.amazonaws.sqs#QueueDoesNotExist", "no such queue");
        let throttled = error(400, "com.amazonaws.sqs#RequestThrottled", "slow down");
        // No fourth answer: the connection fails, and the outcome is unknown.
        let aws = backend(vec![gone, gone_bare, throttled], Vec::new());
        for _ in 0..2 {
            let e = aws.receive(receive("gone")).await.expect_err("gone");
            assert!(
                matches!(&e, BackendError::QueueDoesNotExist { url } if url.ends_with("/gone")),
                "{e:?}"
            );
        }
        let e = aws.receive(receive("busy")).await.expect_err("throttled");
        assert!(
            matches!(e, BackendError::Throttled { service: "sqs", .. }),
            "{e:?}"
        );
        let e = aws
            .receive(receive("busy"))
            .await
            .expect_err("no connection");
        assert!(
            matches!(e, BackendError::Unknown { service: "sqs", .. }),
            "{e:?}"
        );
    }

    #[tokio::test]
    async fn a_throttle_the_sdk_leaves_unmodelled_is_a_throttle_on_every_call() {
        // DeleteMessageBatch models no throttle at all; SQS may still answer one, as may KMS
        // behind an encrypted queue, and a receive past the in-flight limit.
        let answers = vec![
            error(400, "com.amazonaws.sqs#ThrottlingException", "slow down"),
            // As SQS sends it: the query-compatible code in a header, which the SDK reports.
            error_with_header(
                "com.amazonaws.sqs#KmsThrottled",
                "KMS.ThrottlingException;Sender",
            ),
            error(403, "com.amazonaws.sqs#OverLimit", "too many in flight"),
        ];
        let aws = backend(answers, Vec::new());
        let queue = QueueId::new("https://sqs.us-east-1.amazonaws.com/1/busy").unwrap();
        let e = aws
            .delete_batch(queue.clone(), vec!["r-1".into()])
            .await
            .expect_err("throttled");
        assert!(matches!(e, BackendError::Throttled { .. }), "{e:?}");
        let e = aws
            .change_visibility_batch(queue, vec![("r-1".into(), 0)])
            .await
            .expect_err("throttled");
        assert!(matches!(e, BackendError::Throttled { .. }), "{e:?}");
        let e = aws
            .receive(receive("busy"))
            .await
            .expect_err("over the limit");
        assert!(e.is_retryable(), "{e:?}");
        assert!(matches!(e, BackendError::Throttled { .. }), "{e:?}");
    }
}
