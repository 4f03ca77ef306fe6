//! The AWS clients one balancer uses, and how they are built.

use super::client::{dynamodb_config, sqs_config};
use crate::timeouts::Timeouts;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use sqsbalancer_core::Config;

/// The AWS clients one balancer uses, and its coordination table.
#[derive(Clone, Debug)]
pub struct AwsBackend {
    /// The DynamoDB client.
    pub(super) dynamo: aws_sdk_dynamodb::Client,
    /// The SQS client.
    pub(super) sqs: aws_sdk_sqs::Client,
    /// The coordination table's name.
    pub(super) table: String,
    /// How the balancer creates the table when it is missing; `None`: it does not.
    pub(super) create_table: Option<Billing>,
}

/// Where and how to connect.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AwsSettings {
    /// An endpoint for both services instead of AWS's (moto, LocalStack).
    pub endpoint_url: Option<String>,
    /// The region; `None` takes it from the environment and profile, as the SDK does.
    pub region: Option<String>,
    /// Fixed credentials (access key id, secret) instead of the standard chain: for
    /// emulators, which accept any.
    pub static_credentials: Option<(String, String)>,
    /// The calls' deadlines: [`Timeouts::of`] the balancer's configuration.
    pub timeouts: Timeouts,
}

impl AwsSettings {
    /// Both services at `url` instead of AWS's (moto, LocalStack).
    pub fn with_endpoint(mut self, url: impl Into<String>) -> AwsSettings {
        self.endpoint_url = Some(url.into());
        self
    }

    /// Region `region` instead of the environment's and profile's.
    pub fn with_region(mut self, region: impl Into<String>) -> AwsSettings {
        self.region = Some(region.into());
        self
    }

    /// Fixed credentials instead of the standard chain (emulators accept any).
    pub fn with_static_credentials(
        mut self,
        access_key_id: impl Into<String>,
        secret: impl Into<String>,
    ) -> AwsSettings {
        self.static_credentials = Some((access_key_id.into(), secret.into()));
        self
    }
}

impl AwsBackend {
    /// Clients from the standard configuration chain and `settings`, for `table`.
    pub async fn connect(settings: &AwsSettings, table: &str) -> AwsBackend {
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(r) = &settings.region {
            loader = loader.region(Region::new(r.clone()));
        }
        if let Some(u) = &settings.endpoint_url {
            loader = loader.endpoint_url(u.clone());
        }
        if let Some((id, secret)) = &settings.static_credentials {
            loader = loader.credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                id.clone(),
                secret.clone(),
                None,
                None,
                "sqsbalancer-static",
            ));
        }
        let shared = loader.load().await;
        AwsBackend {
            dynamo: aws_sdk_dynamodb::Client::from_conf(dynamodb_config(
                &shared,
                &settings.timeouts,
            )),
            sqs: aws_sdk_sqs::Client::from_conf(sqs_config(&shared, &settings.timeouts)),
            table: table.to_owned(),
            create_table: Some(Billing::OnDemand),
        }
    }

    /// A backend for `cfg` on clients built from `sdk` (what `aws_config::load_defaults`
    /// returns, or the `SdkConfig` the application already uses: region, credentials,
    /// endpoint) with this project's retries and timeouts. The table is the configuration's
    /// `dynamodb_table_name`, so the two cannot disagree.
    pub fn from_sdk_config(sdk: &SdkConfig, cfg: &Config) -> AwsBackend {
        let timeouts = Timeouts::of(cfg);
        AwsBackend {
            dynamo: aws_sdk_dynamodb::Client::from_conf(dynamodb_config(sdk, &timeouts)),
            sqs: aws_sdk_sqs::Client::from_conf(sqs_config(sdk, &timeouts)),
            table: cfg.dynamodb_table_name.clone(),
            create_table: Some(Billing::OnDemand),
        }
    }

    /// Bills a table the balancer creates as `billing` (on-demand by default).
    pub fn with_table_billing(mut self, billing: Billing) -> AwsBackend {
        self.create_table = Some(billing);
        self
    }

    /// Never creates the table: a balancer whose table is missing reports it in its health
    /// and waits for it (for accounts where the service may not create tables).
    pub fn without_table_creation(mut self) -> AwsBackend {
        self.create_table = None;
        self
    }

    /// A backend on clients configured elsewhere (a custom HTTP client, retry policy or
    /// interceptors), for `table`. Build their configurations with [`dynamodb_config`] and
    /// [`sqs_config`] to keep this project's retries and timeouts; whatever they say, a
    /// receive is never retried and never sent past its send-by time.
    pub fn from_clients(
        dynamo: aws_sdk_dynamodb::Client,
        sqs: aws_sdk_sqs::Client,
        table: &str,
    ) -> AwsBackend {
        AwsBackend {
            dynamo,
            sqs,
            table: table.to_owned(),
            create_table: Some(Billing::OnDemand),
        }
    }

    /// The DynamoDB client (for table management).
    pub fn dynamo(&self) -> &aws_sdk_dynamodb::Client {
        &self.dynamo
    }

    /// The SQS client.
    pub fn sqs(&self) -> &aws_sdk_sqs::Client {
        &self.sqs
    }
}

/// How a new coordination table is billed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Billing {
    /// On-demand (the default).
    #[default]
    OnDemand,
    /// Provisioned read and write capacity units.
    Provisioned {
        /// Read capacity units.
        read: i64,
        /// Write capacity units.
        write: i64,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Balancer, RuntimeError};
    use std::sync::Arc;

    /// An SdkConfig that never reaches the network (nothing is sent in these tests).
    fn offline() -> SdkConfig {
        SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("eu-west-1"))
            .build()
    }

    #[test]
    fn a_backend_from_an_sdk_config_uses_the_configuration_s_table() {
        let cfg = Config::new("orders", "coordination");
        let aws = AwsBackend::from_sdk_config(&offline(), &cfg);
        assert_eq!(aws.table, "coordination");
        assert!(Balancer::new(cfg, Arc::new(aws)).is_ok());
    }

    #[test]
    fn a_configuration_naming_another_table_than_the_backend_s_is_refused() {
        let cfg = Config::new("orders", "coordination");
        let aws = AwsBackend::from_sdk_config(&offline(), &Config::new("orders", "other"));
        let Err(e) = Balancer::new(cfg, Arc::new(aws)) else {
            panic!("a table mismatch was accepted");
        };
        assert!(
            matches!(&e, RuntimeError::TableMismatch { configured, backend }
                if configured == "coordination" && backend == "other"),
            "{e}"
        );
    }
}
