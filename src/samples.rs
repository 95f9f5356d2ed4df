//! Sample events, like `sam local generate-event`: one realistic event for each common trigger
//! (API Gateway, ALB, SQS, SNS, S3, EventBridge, DynamoDB and Kinesis streams, schedules).
//!
//! Every sample is built as the `aws_lambda_events` type a Rust function deserializes, then
//! serialized, so field names and shapes are the crate's, never hand-written JSON. The values
//! are SAM's where SAM has one (region `us-east-1`, account `123456789012`, `Hello from SQS!`)
//! and fixed, so that a sample is the same on every run.
//!
//! Part of the ground floor: it imports nothing from the crate.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use aws_lambda_events::alb::AlbTargetGroupRequest;
use aws_lambda_events::apigw::{
    ApiGatewayProxyRequest, ApiGatewayV2httpRequest, ApiGatewayV2httpRequestContextHttpDescription,
};
use aws_lambda_events::cloudwatch_events::CloudWatchEvent;
use aws_lambda_events::dynamodb::{self, EventRecord, StreamViewType};
use aws_lambda_events::encodings::{Base64Data, SecondTimestamp};
use aws_lambda_events::eventbridge::EventBridgeEvent;
use aws_lambda_events::http::{HeaderMap, HeaderName, HeaderValue, Method};
use aws_lambda_events::kinesis::{KinesisEvent, KinesisEventRecord};
use aws_lambda_events::query_map::QueryMap;
use aws_lambda_events::s3::{S3Event, S3EventRecord, S3UserIdentity};
use aws_lambda_events::sns::{MessageAttribute, SnsEvent, SnsRecord};
use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_dynamo::AttributeValue;
use serde_json::Value;

/// The region every sample names.
const REGION: &str = "us-east-1";
/// The account every sample names.
const ACCOUNT: &str = "123456789012";
/// When every sample happened: 2024-03-12T19:03:58Z, in seconds since the epoch.
const EPOCH_SECS: i64 = 1_710_270_238;
/// The body of the HTTP samples.
const HTTP_BODY: &str = r#"{"message":"hello"}"#;
/// The path of the HTTP samples.
const HTTP_PATH: &str = "/path/to/resource";
/// The query of the HTTP samples, as received.
const HTTP_QUERY: &str = "parameter1=value1&parameter1=value2&parameter2=value";

/// A kind of sample event, like `sam local generate-event`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SampleKind {
    /// An HTTP request from a Function URL or an API Gateway HTTP API (payload format 2.0).
    ApigwV2,
    /// An HTTP request from an API Gateway REST API (proxy integration, payload format 1.0).
    ApigwV1,
    /// An HTTP request from an Application Load Balancer target group.
    Alb,
    /// A batch of one SQS message.
    Sqs,
    /// One SNS notification.
    Sns,
    /// An S3 `ObjectCreated:Put` notification.
    S3,
    /// An EventBridge event (an EC2 instance state change).
    Eventbridge,
    /// A DynamoDB stream batch: an insert, a modify and a remove.
    Dynamodb,
    /// A Kinesis stream batch of one record.
    Kinesis,
    /// An EventBridge schedule's `Scheduled Event`.
    Scheduled,
}

impl SampleKind {
    /// Every kind, in the order help texts list them.
    pub const ALL: [SampleKind; 10] = [
        SampleKind::ApigwV2,
        SampleKind::ApigwV1,
        SampleKind::Alb,
        SampleKind::Sqs,
        SampleKind::Sns,
        SampleKind::S3,
        SampleKind::Eventbridge,
        SampleKind::Dynamodb,
        SampleKind::Kinesis,
        SampleKind::Scheduled,
    ];

    /// The kind's name on the command line, such as `apigw-v2`.
    pub fn name(self) -> &'static str {
        match self {
            SampleKind::ApigwV2 => "apigw-v2",
            SampleKind::ApigwV1 => "apigw-v1",
            SampleKind::Alb => "alb",
            SampleKind::Sqs => "sqs",
            SampleKind::Sns => "sns",
            SampleKind::S3 => "s3",
            SampleKind::Eventbridge => "eventbridge",
            SampleKind::Dynamodb => "dynamodb",
            SampleKind::Kinesis => "kinesis",
            SampleKind::Scheduled => "scheduled",
        }
    }

    /// The kind named `name` (as [`SampleKind::name`] gives it), if there is one.
    pub fn parse(name: &str) -> Option<SampleKind> {
        SampleKind::ALL.into_iter().find(|kind| kind.name() == name)
    }

    /// One line saying what the sample is, for help texts and error messages.
    pub fn describe(self) -> &'static str {
        match self {
            SampleKind::ApigwV2 => "HTTP request from a Function URL or an HTTP API (payload 2.0)",
            SampleKind::ApigwV1 => "HTTP request from an API Gateway REST API (payload 1.0)",
            SampleKind::Alb => "HTTP request from an Application Load Balancer",
            SampleKind::Sqs => "SQS message batch",
            SampleKind::Sns => "SNS notification",
            SampleKind::S3 => "S3 object created notification",
            SampleKind::Eventbridge => "EventBridge event (EC2 instance state change)",
            SampleKind::Dynamodb => "DynamoDB stream batch (insert, modify, remove)",
            SampleKind::Kinesis => "Kinesis stream record batch",
            SampleKind::Scheduled => "EventBridge schedule (Scheduled Event)",
        }
    }
}

impl fmt::Display for SampleKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SampleKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SampleKind::parse(s).ok_or_else(|| {
            let names: Vec<&str> = SampleKind::ALL.iter().map(|kind| kind.name()).collect();
            format!(
                "unknown sample event `{s}`: expected one of {}",
                names.join(", ")
            )
        })
    }
}

/// The sample event of `kind`, as JSON.
pub fn example(kind: SampleKind) -> Value {
    match kind {
        SampleKind::ApigwV2 => to_json(&apigw_v2()),
        SampleKind::ApigwV1 => to_json(&apigw_v1()),
        SampleKind::Alb => to_json(&alb()),
        SampleKind::Sqs => to_json(&sqs()),
        SampleKind::Sns => to_json(&sns()),
        SampleKind::S3 => to_json(&s3()),
        SampleKind::Eventbridge => to_json(&eventbridge()),
        SampleKind::Dynamodb => to_json(&dynamodb()),
        SampleKind::Kinesis => to_json(&kinesis()),
        SampleKind::Scheduled => to_json(&scheduled()),
    }
}

/// Serializes a sample. The event types have string keys and hold only UTF-8 text, so this does
/// not fail; `null` stands in if it ever did.
fn to_json<T: Serialize>(event: &T) -> Value {
    serde_json::to_value(event).unwrap_or(Value::Null)
}

/// The moment every sample happened, `seconds_after` [`EPOCH_SECS`].
fn at(seconds_after: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(EPOCH_SECS + seconds_after, 0).unwrap_or_default()
}

fn s(text: &str) -> Option<String> {
    Some(text.to_string())
}

/// A header map from `(name, value)` pairs known to be valid.
fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    map
}

/// The request headers of the HTTP samples.
fn http_headers(host: &'static str) -> HeaderMap {
    headers(&[
        ("accept", "application/json"),
        ("content-type", "application/json"),
        ("host", host),
        ("user-agent", "curl/8.5.0"),
        ("x-forwarded-for", "203.0.113.10"),
        ("x-forwarded-port", "443"),
        ("x-forwarded-proto", "https"),
    ])
}

/// The query of the HTTP samples, every value of a key kept.
fn http_query() -> QueryMap {
    let mut map: HashMap<String, Vec<String>> = HashMap::new();
    for pair in HTTP_QUERY.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        map.entry(key.to_string())
            .or_default()
            .push(value.to_string());
    }
    QueryMap::from(map)
}

fn apigw_v2() -> ApiGatewayV2httpRequest {
    let host = "abcdefghij.lambda-url.us-east-1.on.aws";
    let mut http = ApiGatewayV2httpRequestContextHttpDescription::default();
    http.method = Method::POST;
    http.path = s(HTTP_PATH);
    http.protocol = s("HTTP/1.1");
    http.source_ip = s("203.0.113.10");
    http.user_agent = s("curl/8.5.0");

    let mut event = ApiGatewayV2httpRequest::default();
    event.version = s("2.0");
    event.route_key = s("$default");
    event.raw_path = s(HTTP_PATH);
    event.raw_query_string = s(HTTP_QUERY);
    event.cookies = Some(vec!["session=abc123".to_string(), "theme=dark".to_string()]);
    event.headers = http_headers(host);
    event.query_string_parameters = http_query();
    let context = &mut event.request_context;
    context.route_key = s("$default");
    context.account_id = s(ACCOUNT);
    context.stage = s("$default");
    context.request_id = s("c6af9ac6-7b61-11e6-9a41-93e8deadbeef");
    context.apiid = s("abcdefghij");
    context.domain_name = s(host);
    context.domain_prefix = s("abcdefghij");
    context.time = s("12/Mar/2024:19:03:58 +0000");
    context.time_epoch = EPOCH_SECS * 1000;
    context.http = http;
    event.body = s(HTTP_BODY);
    event.is_base64_encoded = false;
    event
}

fn apigw_v1() -> ApiGatewayProxyRequest {
    let host = "1234567890.execute-api.us-east-1.amazonaws.com";
    let query = http_query();
    let mut event = ApiGatewayProxyRequest::default();
    event.resource = s("/{proxy+}");
    event.path = s(HTTP_PATH);
    event.http_method = Method::POST;
    event.headers = http_headers(host);
    event.multi_value_headers = http_headers(host);
    // API Gateway keeps the last value of a repeated key in `queryStringParameters`; the crate
    // serializes the first one, so that map holds only the last ones.
    let last: HashMap<String, String> = query
        .iter()
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect();
    event.query_string_parameters = QueryMap::from(last);
    event.multi_value_query_string_parameters = query;
    event.path_parameters = HashMap::from([("proxy".to_string(), "path/to/resource".to_string())]);
    let context = &mut event.request_context;
    context.account_id = s(ACCOUNT);
    context.resource_id = s("123456");
    // `$default` rather than a named stage such as `prod`: lambda_http puts a named stage in
    // front of the path, and a router would then not find the route.
    context.stage = s("$default");
    context.domain_name = s(host);
    context.domain_prefix = s("1234567890");
    context.request_id = s("c6af9ac6-7b61-11e6-9a41-93e8deadbeef");
    context.protocol = s("HTTP/1.1");
    context.identity.source_ip = s("203.0.113.10");
    context.identity.user_agent = s("curl/8.5.0");
    context.resource_path = s("/{proxy+}");
    context.path = s(HTTP_PATH);
    context.http_method = Method::POST;
    context.request_time = s("12/Mar/2024:19:03:58 +0000");
    context.request_time_epoch = EPOCH_SECS * 1000;
    context.apiid = s("1234567890");
    event.body = s(HTTP_BODY);
    event
}

fn alb() -> AlbTargetGroupRequest {
    let mut event = AlbTargetGroupRequest::default();
    event.http_method = Method::POST;
    event.path = s(HTTP_PATH);
    // Without multi-value headers turned on, a target group sends the last value of a key.
    let last: HashMap<String, String> = http_query()
        .iter()
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect();
    event.query_string_parameters = QueryMap::from(last);
    event.headers = http_headers("my-alb-1234567890.us-east-1.elb.amazonaws.com");
    event.request_context.elb.target_group_arn = s(
        "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/my-target-group/6d0ecf831eec9f09",
    );
    event.body = s(HTTP_BODY);
    event
}

fn sqs() -> SqsEvent {
    let mut message = SqsMessage::default();
    message.message_id = s("19dd0b57-b21e-4ac1-bd88-01bbb068cb78");
    message.receipt_handle = s("MessageReceiptHandle");
    message.body = s("Hello from SQS!");
    message.md5_of_body = s("7b270e59b47ff90a553787216d55d91d");
    message.attributes = HashMap::from([
        ("ApproximateReceiveCount".to_string(), "1".to_string()),
        ("SentTimestamp".to_string(), (EPOCH_SECS * 1000).to_string()),
        ("SenderId".to_string(), ACCOUNT.to_string()),
        (
            "ApproximateFirstReceiveTimestamp".to_string(),
            (EPOCH_SECS * 1000 + 1).to_string(),
        ),
    ]);
    message.event_source = s("aws:sqs");
    message.event_source_arn = s("arn:aws:sqs:us-east-1:123456789012:MyQueue");
    message.aws_region = s(REGION);
    let mut event = SqsEvent::default();
    event.records = vec![message];
    event
}

fn sns() -> SnsEvent {
    let topic = "arn:aws:sns:us-east-1:123456789012:sns-lambda";
    let subscription = format!("{topic}:21be56ed-a058-49f5-8c98-aedd2564c486");
    let mut attribute = MessageAttribute::default();
    attribute.data_type = "String".to_string();
    attribute.value = "TestString".to_string();

    let mut record = SnsRecord::default();
    record.event_source = "aws:sns".to_string();
    record.event_version = "1.0".to_string();
    record.event_subscription_arn = subscription.clone();
    let message = &mut record.sns;
    message.sns_message_type = "Notification".to_string();
    message.message_id = "95df01b4-ee98-5cb9-9903-4c221d41eb5e".to_string();
    message.topic_arn = topic.to_string();
    message.subject = s("TestInvoke");
    message.timestamp = at(0);
    message.signature_version = "1".to_string();
    message.signature = "EXAMPLE".to_string();
    message.signing_cert_url =
        "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0000000000000000000000.pem"
            .to_string();
    message.unsubscribe_url = format!(
        "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn={subscription}"
    );
    message.message = "Hello from SNS!".to_string();
    message.message_attributes = HashMap::from([("Test".to_string(), attribute)]);
    let mut event = SnsEvent::default();
    event.records = vec![record];
    event
}

fn s3() -> S3Event {
    let mut owner = S3UserIdentity::default();
    owner.principal_id = s("EXAMPLE");

    let mut record = S3EventRecord::default();
    record.event_version = s("2.1");
    record.event_source = s("aws:s3");
    record.aws_region = s(REGION);
    record.event_time = at(0);
    record.event_name = s("ObjectCreated:Put");
    record.principal_id = owner.clone();
    record.request_parameters.source_ip_address = s("203.0.113.10");
    record.response_elements = HashMap::from([
        (
            "x-amz-request-id".to_string(),
            "EXAMPLE123456789".to_string(),
        ),
        (
            "x-amz-id-2".to_string(),
            "EXAMPLE123/5678abcdefghijklambdaisawesome/mnopqrstuvwxyzABCDEFGH".to_string(),
        ),
    ]);
    let entity = &mut record.s3;
    entity.schema_version = s("1.0");
    entity.configuration_id = s("testConfigRule");
    entity.bucket.name = s("example-bucket");
    entity.bucket.owner_identity = Some(owner);
    entity.bucket.arn = s("arn:aws:s3:::example-bucket");
    entity.object.key = s("test/key");
    entity.object.size = Some(1024);
    entity.object.e_tag = s("0123456789abcdef0123456789abcdef");
    entity.object.sequencer = s("0A1B2C3D4E5F678901");
    let mut event = S3Event::default();
    event.records = vec![record];
    event
}

fn eventbridge() -> EventBridgeEvent {
    let mut detail = serde_json::Map::new();
    detail.insert("instance-id".to_string(), Value::from("i-abcd1111"));
    detail.insert("state".to_string(), Value::from("pending"));

    let mut event = EventBridgeEvent::default();
    event.version = s("0");
    event.id = s("7bf73129-1428-4cd3-a780-95db273d1602");
    event.detail_type = "EC2 Instance State-change Notification".to_string();
    event.source = "aws.ec2".to_string();
    event.account = s(ACCOUNT);
    event.time = Some(at(0));
    event.region = s(REGION);
    event.resources = Some(vec![
        "arn:aws:ec2:us-east-1:123456789012:instance/i-abcd1111".to_string(),
    ]);
    event.detail = Value::Object(detail);
    event
}

/// One DynamoDB stream record of table `ExampleTableWithStream`, the item's `Id` being 101.
fn dynamodb_record(
    name: &str,
    sequence: &str,
    new: Option<&str>,
    old: Option<&str>,
) -> EventRecord {
    let image = |message: &str| {
        HashMap::from([
            ("Id".to_string(), AttributeValue::N("101".to_string())),
            (
                "Message".to_string(),
                AttributeValue::S(message.to_string()),
            ),
        ])
    };
    let mut record = EventRecord::default();
    record.aws_region = REGION.to_string();
    record.event_id = format!("c4ca4238a0b923820dcc509a6f75849b-{name}");
    record.event_name = name.to_string();
    record.event_source = s("aws:dynamodb");
    record.event_version = s("1.1");
    record.event_source_arn = s(
        "arn:aws:dynamodb:us-east-1:123456789012:table/ExampleTableWithStream/stream/2024-03-12T19:03:58.000",
    );
    let change = &mut record.change;
    change.approximate_creation_date_time = at(0);
    change.keys = HashMap::from([("Id".to_string(), AttributeValue::N("101".to_string()))]).into();
    if let Some(message) = new {
        change.new_image = image(message).into();
    }
    if let Some(message) = old {
        change.old_image = image(message).into();
    }
    change.sequence_number = s(sequence);
    change.size_bytes = 26;
    change.stream_view_type = Some(StreamViewType::NewAndOldImages);
    record
}

fn dynamodb() -> dynamodb::Event {
    let mut event = dynamodb::Event::default();
    event.records = vec![
        dynamodb_record("INSERT", "111", Some("New item!"), None),
        dynamodb_record(
            "MODIFY",
            "222",
            Some("This item has changed"),
            Some("New item!"),
        ),
        dynamodb_record("REMOVE", "333", None, Some("This item has changed")),
    ];
    event
}

fn kinesis() -> KinesisEvent {
    let sequence = "49590338271490256608559692538361571095921575989136588898";
    let mut data = Base64Data::default();
    data.0 = b"Hello, this is a test.".to_vec();

    let mut record = KinesisEventRecord::default();
    record.aws_region = s(REGION);
    record.event_id = Some(format!("shardId-000000000006:{sequence}"));
    record.event_name = s("aws:kinesis:record");
    record.event_source = s("aws:kinesis");
    record.event_source_arn = s("arn:aws:kinesis:us-east-1:123456789012:stream/lambda-stream");
    record.event_version = s("1.0");
    record.invoke_identity_arn = s("arn:aws:iam::123456789012:role/lambda-role");
    record.kinesis.approximate_arrival_timestamp = SecondTimestamp(at(0));
    record.kinesis.data = data;
    record.kinesis.partition_key = "1".to_string();
    record.kinesis.sequence_number = sequence.to_string();
    record.kinesis.kinesis_schema_version = s("1.0");
    let mut event = KinesisEvent::default();
    event.records = vec![record];
    event
}

fn scheduled() -> CloudWatchEvent {
    let mut event = CloudWatchEvent::default();
    event.version = s("0");
    event.id = s("cdc73f9d-aea9-11e3-9d5a-835b769c0d9c");
    event.detail_type = s("Scheduled Event");
    event.source = s("aws.events");
    event.account_id = s(ACCOUNT);
    event.time = at(0);
    event.region = s(REGION);
    event.resources = vec!["arn:aws:events:us-east-1:123456789012:rule/ExampleRule".to_string()];
    event.detail = Some(Value::Object(serde_json::Map::new()));
    event
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::DeserializeOwned;

    /// Deserializes `kind`'s sample into `T` and serializes it again: the same JSON comes back.
    fn round_trips<T: DeserializeOwned + Serialize>(kind: SampleKind) {
        let value = example(kind);
        assert!(value.is_object(), "{kind}: {value}");
        let parsed: T = serde_json::from_value(value.clone())
            .unwrap_or_else(|e| panic!("{kind} does not deserialize: {e}\n{value:#}"));
        assert_eq!(serde_json::to_value(&parsed).unwrap(), value, "{kind}");
    }

    #[test]
    fn every_kind_round_trips_through_its_crate_type() {
        for kind in SampleKind::ALL {
            match kind {
                SampleKind::ApigwV2 => round_trips::<ApiGatewayV2httpRequest>(kind),
                SampleKind::ApigwV1 => round_trips::<ApiGatewayProxyRequest>(kind),
                SampleKind::Alb => round_trips::<AlbTargetGroupRequest>(kind),
                SampleKind::Sqs => round_trips::<SqsEvent>(kind),
                SampleKind::Sns => round_trips::<SnsEvent>(kind),
                SampleKind::S3 => round_trips::<S3Event>(kind),
                SampleKind::Eventbridge => round_trips::<EventBridgeEvent>(kind),
                SampleKind::Dynamodb => round_trips::<dynamodb::Event>(kind),
                SampleKind::Kinesis => round_trips::<KinesisEvent>(kind),
                SampleKind::Scheduled => round_trips::<CloudWatchEvent>(kind),
            }
        }
    }

    #[test]
    fn names_parse_back_and_unknown_names_list_the_valid_ones() {
        for kind in SampleKind::ALL {
            assert_eq!(SampleKind::parse(kind.name()), Some(kind));
            assert_eq!(kind.to_string().parse::<SampleKind>(), Ok(kind));
            assert!(!kind.describe().is_empty());
        }
        let error = "apigw".parse::<SampleKind>().unwrap_err();
        assert!(error.contains("`apigw`"), "{error}");
        assert!(error.contains("apigw-v2, apigw-v1, alb, sqs"), "{error}");
        assert_eq!(SampleKind::parse("SQS"), None);
    }

    #[test]
    fn samples_are_the_same_on_every_call() {
        for kind in SampleKind::ALL {
            assert_eq!(example(kind), example(kind), "{kind}");
        }
    }

    #[test]
    fn apigw_v2_is_a_payload_2_0_request() {
        let event = example(SampleKind::ApigwV2);
        assert_eq!(event["version"], "2.0");
        assert_eq!(event["routeKey"], "$default");
        assert_eq!(event["rawPath"], HTTP_PATH);
        assert_eq!(event["requestContext"]["http"]["method"], "POST");
        assert_eq!(event["requestContext"]["accountId"], ACCOUNT);
        assert_eq!(event["requestContext"]["timeEpoch"], 1_710_270_238_000_i64);
        assert_eq!(
            event["queryStringParameters"]["parameter1"],
            "value1,value2"
        );
        assert_eq!(event["cookies"][1], "theme=dark");
        assert_eq!(event["body"], HTTP_BODY);
        assert_eq!(event["isBase64Encoded"], false);
    }

    #[test]
    fn apigw_v1_and_alb_are_payload_1_0_requests() {
        let v1 = example(SampleKind::ApigwV1);
        assert_eq!(v1["httpMethod"], "POST");
        assert_eq!(v1["resource"], "/{proxy+}");
        assert_eq!(v1["pathParameters"]["proxy"], "path/to/resource");
        assert_eq!(v1["queryStringParameters"]["parameter1"], "value2");
        assert_eq!(
            v1["multiValueQueryStringParameters"]["parameter1"],
            serde_json::json!(["value1", "value2"])
        );
        assert_eq!(v1["requestContext"]["identity"]["sourceIp"], "203.0.113.10");

        let alb = example(SampleKind::Alb);
        assert_eq!(alb["httpMethod"], "POST");
        assert!(alb["requestContext"]["elb"]["targetGroupArn"]
            .as_str()
            .unwrap()
            .starts_with("arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/"));
    }

    #[test]
    fn record_batches_name_their_source() {
        let sqs = example(SampleKind::Sqs);
        assert_eq!(sqs["Records"][0]["eventSource"], "aws:sqs");
        assert_eq!(sqs["Records"][0]["body"], "Hello from SQS!");
        assert_eq!(
            sqs["Records"][0]["eventSourceARN"],
            "arn:aws:sqs:us-east-1:123456789012:MyQueue"
        );
        let sns = example(SampleKind::Sns);
        assert_eq!(sns["Records"][0]["EventSource"], "aws:sns");
        assert_eq!(sns["Records"][0]["Sns"]["Message"], "Hello from SNS!");
        let s3 = example(SampleKind::S3);
        assert_eq!(s3["Records"][0]["eventName"], "ObjectCreated:Put");
        assert_eq!(s3["Records"][0]["s3"]["bucket"]["name"], "example-bucket");
        assert_eq!(s3["Records"][0]["s3"]["object"]["key"], "test/key");
        let dynamodb = example(SampleKind::Dynamodb);
        let names: Vec<&Value> = (0..3)
            .map(|i| &dynamodb["Records"][i]["eventName"])
            .collect();
        assert_eq!(names, ["INSERT", "MODIFY", "REMOVE"]);
        assert_eq!(dynamodb["Records"][0]["dynamodb"]["Keys"]["Id"]["N"], "101");
        let kinesis = example(SampleKind::Kinesis);
        assert_eq!(kinesis["Records"][0]["eventSource"], "aws:kinesis");
        assert_eq!(
            kinesis["Records"][0]["kinesis"]["data"],
            "SGVsbG8sIHRoaXMgaXMgYSB0ZXN0Lg=="
        );
    }

    #[test]
    fn eventbridge_events_carry_their_detail_type() {
        let scheduled = example(SampleKind::Scheduled);
        assert_eq!(scheduled["source"], "aws.events");
        assert_eq!(scheduled["detail-type"], "Scheduled Event");
        assert_eq!(scheduled["account"], ACCOUNT);
        assert_eq!(scheduled["time"], "2024-03-12T19:03:58Z");
        assert_eq!(scheduled["detail"], serde_json::json!({}));
        let event = example(SampleKind::Eventbridge);
        assert_eq!(
            event["detail-type"],
            "EC2 Instance State-change Notification"
        );
        assert_eq!(event["detail"]["state"], "pending");
    }
}
