//! Moving messages from one queue to another (the seed's "DLQ redrive" runbook step).
//!
//! Uses `StartMessageMoveTask` where the engine implements it, and a receive / send /
//! delete loop otherwise (MiniStack), which keeps bodies and message attributes.
//!
//! Floor 4: may import floors 0-3 (ground, engine, topology, fidelity).

use std::time::Duration;

use aws_sdk_sqs::types::{MessageSystemAttributeName, SendMessageBatchRequestEntry};

use crate::engine::Capabilities;
use crate::errors::sdk;
use crate::topology::QueueRef;

/// Moves every message from `from` to `to`; returns how many moved.
pub async fn redrive(
    sqs: &aws_sdk_sqs::Client,
    caps: &Capabilities,
    from: &QueueRef,
    to: &QueueRef,
) -> Result<usize, String> {
    if caps.message_move_task {
        match move_task(sqs, from, to).await {
            Ok(n) => return Ok(n),
            Err(e) => {
                tracing::info!(error = %e, "StartMessageMoveTask unavailable; moving by hand")
            }
        }
    }
    move_by_hand(sqs, from, to).await
}

async fn move_task(
    sqs: &aws_sdk_sqs::Client,
    from: &QueueRef,
    to: &QueueRef,
) -> Result<usize, String> {
    let task = sqs
        .start_message_move_task()
        .source_arn(&from.arn)
        .destination_arn(&to.arn)
        .send()
        .await
        .map_err(sdk)?;
    let handle = task.task_handle().unwrap_or_default().to_string();
    for _ in 0..600 {
        let tasks = sqs
            .list_message_move_tasks()
            .source_arn(&from.arn)
            .send()
            .await
            .map_err(sdk)?;
        if let Some(t) = tasks
            .results()
            .iter()
            .find(|t| t.task_handle().is_none_or(|h| h == handle))
        {
            match t.status().unwrap_or("") {
                "COMPLETED" => return Ok(t.approximate_number_of_messages_moved() as usize),
                "FAILED" | "CANCELLED" => {
                    return Err(format!(
                        "move task {}: {}",
                        t.status().unwrap_or(""),
                        t.failure_reason().unwrap_or("")
                    ))
                }
                _ => {}
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err("move task did not complete within 60s".into())
}

async fn move_by_hand(
    sqs: &aws_sdk_sqs::Client,
    from: &QueueRef,
    to: &QueueRef,
) -> Result<usize, String> {
    let mut moved = 0;
    let mut empty_rounds = 0;
    while empty_rounds < 2 {
        let out = sqs
            .receive_message()
            .queue_url(&from.url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .visibility_timeout(30)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await
            .map_err(sdk)?;
        let messages = out.messages.unwrap_or_default();
        if messages.is_empty() {
            empty_rounds += 1;
            continue;
        }
        empty_rounds = 0;
        let entries: Vec<SendMessageBatchRequestEntry> = messages
            .iter()
            .enumerate()
            .filter_map(|(i, m)| {
                SendMessageBatchRequestEntry::builder()
                    .id(format!("m{i}"))
                    .message_body(m.body().unwrap_or_default())
                    .set_message_attributes(m.message_attributes().cloned())
                    .build()
                    .ok()
            })
            .collect();
        let sent = sqs
            .send_message_batch()
            .queue_url(&to.url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(sdk)?;
        // Delete only what was sent: nothing is lost if a send failed.
        for ok in sent.successful() {
            let idx: usize = ok
                .id()
                .trim_start_matches('m')
                .parse()
                .unwrap_or(usize::MAX);
            if let Some(receipt) = messages.get(idx).and_then(|m| m.receipt_handle()) {
                sqs.delete_message()
                    .queue_url(&from.url)
                    .receipt_handle(receipt)
                    .send()
                    .await
                    .map_err(sdk)?;
                moved += 1;
            }
        }
    }
    Ok(moved)
}
