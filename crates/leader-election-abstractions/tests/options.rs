//! Options: the seed's defaults, validation naming field and rule, config loading.
#![allow(clippy::field_reassign_with_default, clippy::type_complexity)] // tests change one field at a time

use std::collections::BTreeMap;
use std::time::Duration;

use leader_election_abstractions::limits::{
    validate_candidate_id, validate_resource_name, MAX_METADATA_ENTRIES, MAX_METADATA_TOTAL_BYTES,
};
use leader_election_abstractions::{Error, LeaderElectionOptions};

fn field_of(error: Error) -> String {
    match error {
        Error::InvalidOption { field, .. } => field.into_owned(),
        Error::InvalidName { what, .. } => what.to_owned(),
        other => panic!("expected a validation error, got {other:?}"),
    }
}

fn rejected(options: LeaderElectionOptions) -> String {
    field_of(options.validate().expect_err("options should be rejected"))
}

#[test]
fn defaults_match_the_seed() {
    let options = LeaderElectionOptions::default();
    assert_eq!(options.lease_duration, Duration::from_secs(15));
    assert_eq!(options.renew_interval, Duration::from_secs(5));
    assert_eq!(options.retry_interval, Duration::from_secs(2));
    assert_eq!(options.grace_period, Duration::from_secs(5));
    assert!(!options.instance_id.is_empty());
    assert!(options.candidate_metadata.is_empty());
    assert!(options.enable_health_checks);
    assert_eq!(options.minimum_health_score, 0.8);
    assert!(options.step_down_when_unhealthy);
    options.validate().expect("defaults are valid");
}

#[test]
fn zero_durations_are_rejected_naming_the_field() {
    let zero = Duration::ZERO;
    let cases: [(&str, fn(&mut LeaderElectionOptions, Duration)); 4] = [
        ("lease_duration", |o, d| o.lease_duration = d),
        ("renew_interval", |o, d| o.renew_interval = d),
        ("retry_interval", |o, d| o.retry_interval = d),
        ("grace_period", |o, d| o.grace_period = d),
    ];
    for (field, set) in cases {
        let mut options = LeaderElectionOptions::default();
        set(&mut options, zero);
        assert_eq!(rejected(options), field);
    }
}

#[test]
fn renew_interval_must_leave_room_for_two_renewals() {
    let mut options = LeaderElectionOptions::default();
    options.renew_interval = Duration::from_millis(7500);
    let message = options.validate().expect_err("7.5s × 2 = 15s").to_string();
    assert!(
        message.contains("renew_interval") && message.contains("two renewals"),
        "{message}"
    );
    options.renew_interval = Duration::from_millis(7499);
    options.validate().expect("just inside the rule");
}

#[test]
fn retry_interval_may_not_exceed_the_lease() {
    let mut options = LeaderElectionOptions::default();
    options.retry_interval = Duration::from_secs(16);
    assert_eq!(rejected(options), "retry_interval");
}

#[test]
fn minimum_health_score_must_be_between_zero_and_one() {
    for bad in [-0.1, 1.01, f64::NAN, f64::INFINITY] {
        let mut options = LeaderElectionOptions::default();
        options.minimum_health_score = bad;
        assert_eq!(rejected(options), "minimum_health_score", "{bad}");
    }
    for good in [0.0, 1.0] {
        let mut options = LeaderElectionOptions::default();
        options.minimum_health_score = good;
        options.validate().expect("boundary values are valid");
    }
}

#[test]
fn instance_id_must_be_a_valid_candidate_id() {
    for bad in ["", " padded", "tab\there", &"x".repeat(254)] {
        let mut options = LeaderElectionOptions::default();
        options.instance_id = bad.to_owned();
        assert_eq!(rejected(options), "instance_id", "{bad:?}");
    }
}

#[test]
fn oversized_or_malformed_metadata_is_rejected() {
    let mut options = LeaderElectionOptions::default();
    options.candidate_metadata = (0..=MAX_METADATA_ENTRIES)
        .map(|i| (format!("k{i}"), String::new()))
        .collect();
    assert_eq!(rejected(options), "candidate_metadata");

    let mut options = LeaderElectionOptions::default();
    options.candidate_metadata =
        BTreeMap::from([("big".to_owned(), "v".repeat(MAX_METADATA_TOTAL_BYTES))]);
    assert_eq!(rejected(options), "candidate_metadata");

    let mut options = LeaderElectionOptions::default();
    options.candidate_metadata = BTreeMap::from([(String::new(), "v".to_owned())]);
    assert_eq!(rejected(options), "metadata key");
}

#[test]
fn options_load_from_config_with_readable_durations_and_defaults() {
    let options: LeaderElectionOptions = serde_json::from_str(
        r#"{ "lease_duration": "30s", "renew_interval": "10s", "retry_interval": "500ms",
             "instance_id": "node-7", "minimum_health_score": 0.75,
             "candidate_metadata": { "version": "1.0.0" } }"#,
    )
    .expect("valid config");
    assert_eq!(options.lease_duration, Duration::from_secs(30));
    assert_eq!(options.retry_interval, Duration::from_millis(500));
    assert_eq!(options.grace_period, Duration::from_secs(5), "default kept");
    assert_eq!(options.candidate_metadata["version"], "1.0.0");
    options.validate().expect("valid");
}

#[test]
fn unknown_config_fields_are_an_error_naming_the_field() {
    let error = serde_json::from_str::<LeaderElectionOptions>(r#"{ "lease_duraton": "30s" }"#)
        .expect_err("typo rejected");
    assert!(error.to_string().contains("lease_duraton"), "{error}");
}

#[test]
fn builder_validates_on_build() {
    let error = LeaderElectionOptions::builder()
        .lease_duration(Duration::from_secs(4))
        .build()
        .expect_err("renew 5s does not fit a 4s lease");
    assert_eq!(field_of(error), "renew_interval");
    let options = LeaderElectionOptions::builder()
        .lease_duration(Duration::from_secs(4))
        .renew_interval(Duration::from_secs(1))
        .retry_interval(Duration::from_secs(1))
        .grace_period(Duration::from_secs(1))
        .metadata("region", "eu")
        .enable_health_checks(false)
        .step_down_when_unhealthy(false)
        .minimum_health_score(0.5)
        .instance_id("me")
        .build()
        .expect("valid");
    assert_eq!(options.candidate_metadata["region"], "eu");
    assert!(!options.enable_health_checks && !options.step_down_when_unhealthy);
}

#[test]
fn resource_names_follow_the_portable_rule() {
    for good in ["a", "orders-cleanup", "v1.2_job", &"r".repeat(253)] {
        validate_resource_name(good).expect(good);
    }
    for bad in [
        "",
        "-lead",
        "trail-",
        "has space",
        "slash/inside",
        "ünicode",
        &"r".repeat(254),
    ] {
        let error = validate_resource_name(bad).expect_err(bad);
        assert_eq!(field_of(error), "resource name");
    }
}

#[test]
fn candidate_ids_reject_control_characters_and_padding() {
    validate_candidate_id("host-1 (pid 42)").expect("spaces inside are fine");
    for bad in ["", "new\nline", " lead", "trail ", "\u{7f}"] {
        let error = validate_candidate_id(bad).expect_err(bad);
        assert_eq!(field_of(error), "candidate id");
    }
}

#[test]
fn long_values_are_shortened_in_error_messages() {
    let error = validate_candidate_id(&"x".repeat(1000)).expect_err("too long");
    assert!(error.to_string().len() < 200, "{error}");
}
