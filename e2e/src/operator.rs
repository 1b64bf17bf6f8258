//! Installing the operator's API into the test cluster: the CRDs (with the conversion
//! webhook) and both webhook configurations, pointing at the in-process [`WebhookServer`].
//!
//! Everything is applied server-side with the field manager [`FIELD_MANAGER`], so reruns and
//! re-applies are idempotent.
//!
//! Against an external cluster (`E2E_KUBECONFIG`/`KUBECONFIG`) the apiserver cannot reach a
//! webhook on this machine's 127.0.0.1, so nothing is installed: the operator must already be
//! installed there (CRDs `natsclusters.nats.io`/`natsserviceroles.nats.io` and the
//! `nats-operator` webhook configurations, e.g. from `manifests/`). When it is not, the
//! webhook-dependent scenarios are skipped with a message saying so.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Api, Client};
use nats_operator::api::crd::{ConversionEndpoint, nats_cluster, nats_service_role};
use nats_operator::webhook_config::{
    WEBHOOK_CONFIGURATION_NAME, mutating_webhook_configuration, validating_webhook_configuration,
};
use serde_json::json;

use crate::{TestCluster, WebhookServer};

/// Field manager of everything the harness applies.
pub const FIELD_MANAGER: &str = "nats-operator-e2e";
/// Name of the NatsCluster CRD.
pub const NATSCLUSTER_CRD: &str = "natsclusters.nats.io";
/// Name of the NatsServiceRole CRD.
pub const NATSSERVICEROLE_CRD: &str = "natsserviceroles.nats.io";

/// How long the apiserver may take to pick up CRDs and webhook configurations.
const PROPAGATION_TIMEOUT: Duration = Duration::from_secs(60);

/// The operator's API as installed in a test cluster.
#[derive(Debug)]
pub struct NatsOperator {
    cluster: &'static TestCluster,
    webhook: Option<&'static WebhookServer>,
}

static SHARED: tokio::sync::OnceCell<std::result::Result<Option<NatsOperator>, String>> =
    tokio::sync::OnceCell::const_new();

impl NatsOperator {
    /// The installation shared by all tests of this test binary, done on first use:
    /// * local control plane: starts [`WebhookServer::shared`], applies the CRDs and webhook
    ///   configurations and waits until the apiserver really calls the webhooks;
    /// * external cluster: checks that the operator is installed there.
    ///
    /// `Ok(None)` means "skip": the cluster is external and has no operator installed (the
    /// reason is printed on stderr).
    pub async fn shared() -> Result<Option<&'static NatsOperator>> {
        let outcome = SHARED
            .get_or_init(|| async { Self::setup().await.map_err(|e| format!("{e:#}")) })
            .await;
        match outcome {
            Ok(Some(op)) => Ok(Some(op)),
            Ok(None) => {
                eprintln!(
                    "SKIPPED: the external cluster has no nats-operator installed \
                     (CRD {NATSCLUSTER_CRD} and webhook configuration \
                     {WEBHOOK_CONFIGURATION_NAME}); E2E_KUBECONFIG expects the operator \
                     already installed, e.g. from manifests/"
                );
                Ok(None)
            }
            Err(e) => Err(anyhow!("nats-operator installation unavailable: {e}")),
        }
    }

    async fn setup() -> Result<Option<NatsOperator>> {
        let cluster = TestCluster::shared().await?;
        let client = cluster.client()?;
        if cluster.is_external() {
            let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
            let vwc: Api<ValidatingWebhookConfiguration> = Api::all(client);
            let installed = crds.get_opt(NATSCLUSTER_CRD).await?.is_some()
                && vwc.get_opt(WEBHOOK_CONFIGURATION_NAME).await?.is_some();
            return Ok(installed.then_some(NatsOperator {
                cluster,
                webhook: None,
            }));
        }
        let webhook = WebhookServer::shared()?;
        let op = NatsOperator {
            cluster,
            webhook: Some(webhook),
        };
        let started = Instant::now();
        op.install_crds().await?;
        // As on a replica of `nats-operator run`, validation warns from the informer caches.
        webhook.watch_cluster(cluster.config().clone())?;
        op.apply_webhook_configurations().await?;
        op.wait_until_webhooks_serve().await?;
        eprintln!(
            "nats-operator API installed (webhook {}) in {:?}",
            webhook.base_url(),
            started.elapsed()
        );
        Ok(Some(op))
    }

    /// The cluster.
    pub fn cluster(&self) -> &'static TestCluster {
        self.cluster
    }

    /// The in-process webhook server (`None` on an external cluster).
    pub fn webhook(&self) -> Option<&'static WebhookServer> {
        self.webhook
    }

    fn local_webhook(&self) -> Result<&'static WebhookServer> {
        self.webhook
            .ok_or_else(|| anyhow!("no in-process webhook server: external cluster"))
    }

    fn client(&self) -> Result<Client> {
        self.cluster.client()
    }

    /// Server-side applies every CRD (NatsCluster with the conversion webhook at
    /// `<webhook>/convert`, NatsServiceRole, NACK's kinds) and waits until they are
    /// Established.
    pub async fn install_crds(&self) -> Result<()> {
        let webhook = self.local_webhook()?;
        let ca = webhook.ca_pem().as_bytes();
        let convert = ConversionEndpoint::Url(format!("{}/convert", webhook.base_url()));
        let api: Api<CustomResourceDefinition> = Api::all(self.client()?);
        let pp = PatchParams::apply(FIELD_MANAGER).force();
        let mut crds = vec![nats_cluster(&convert, Some(ca)), nats_service_role()];
        crds.extend(nats_operator::jetstream::crd::asset_crds());
        let mut names = Vec::new();
        for crd in crds {
            let name = crd.metadata.name.clone().context("CRD without a name")?;
            api.patch(&name, &pp, &Patch::Apply(&crd))
                .await
                .with_context(|| format!("applying CRD {name}"))?;
            names.push(name);
        }
        for name in &names {
            tokio::time::timeout(
                PROPAGATION_TIMEOUT,
                await_condition(api.clone(), name, conditions::is_crd_established()),
            )
            .await
            .with_context(|| format!("CRD {name} not Established after {PROPAGATION_TIMEOUT:?}"))?
            .with_context(|| format!("watching CRD {name}"))?;
        }
        Ok(())
    }

    /// Server-side applies the ValidatingWebhookConfiguration (also used to restore it).
    pub async fn apply_validating_configuration(&self) -> Result<()> {
        let webhook = self.local_webhook()?;
        let endpoint = ConversionEndpoint::Url(webhook.base_url());
        let vwc = validating_webhook_configuration(&endpoint, Some(webhook.ca_pem().as_bytes()));
        let api: Api<ValidatingWebhookConfiguration> = Api::all(self.client()?);
        api.patch(
            WEBHOOK_CONFIGURATION_NAME,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&vwc),
        )
        .await
        .context("applying the ValidatingWebhookConfiguration")?;
        Ok(())
    }

    /// Server-side applies both webhook configurations.
    pub async fn apply_webhook_configurations(&self) -> Result<()> {
        let webhook = self.local_webhook()?;
        let endpoint = ConversionEndpoint::Url(webhook.base_url());
        let mwc = mutating_webhook_configuration(&endpoint, Some(webhook.ca_pem().as_bytes()));
        let api: Api<MutatingWebhookConfiguration> = Api::all(self.client()?);
        api.patch(
            WEBHOOK_CONFIGURATION_NAME,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&mwc),
        )
        .await
        .context("applying the MutatingWebhookConfiguration")?;
        self.apply_validating_configuration().await
    }

    /// Deletes the ValidatingWebhookConfiguration and waits until the apiserver no longer
    /// calls it (an object our validation denies is accepted in a dry run).
    pub async fn delete_validating_configuration(&self) -> Result<()> {
        self.local_webhook()?;
        let api: Api<ValidatingWebhookConfiguration> = Api::all(self.client()?);
        match api
            .delete(WEBHOOK_CONFIGURATION_NAME, &DeleteParams::default())
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e).context("deleting the ValidatingWebhookConfiguration"),
        }
        self.wait_for_validation(false).await
    }

    /// Deletes both admission webhook configurations (the conversion webhook stays, in
    /// the CRD) and waits until the apiserver calls neither: objects are then stored as
    /// written, without our defaults, as the Go operator stored them. Restore with
    /// [`Self::apply_webhook_configurations`] and [`Self::wait_until_webhooks_serve`].
    pub async fn delete_admission_configurations(&self) -> Result<()> {
        self.local_webhook()?;
        let api: Api<MutatingWebhookConfiguration> = Api::all(self.client()?);
        match api
            .delete(WEBHOOK_CONFIGURATION_NAME, &DeleteParams::default())
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e).context("deleting the MutatingWebhookConfiguration"),
        }
        self.delete_validating_configuration().await?;
        let deadline = Instant::now() + PROPAGATION_TIMEOUT;
        while Instant::now() < deadline {
            let obj = self.dry_run_create(probe_valid()).await?;
            if obj.data["spec"]["version"]
                .as_str()
                .unwrap_or_default()
                .is_empty()
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("the mutating webhook is still called after {PROPAGATION_TIMEOUT:?}")
    }

    /// Waits until the apiserver calls all three webhooks: a dry-run create of an object our
    /// validation denies is denied, and a dry-run create of a minimal v1alpha2 object comes
    /// back defaulted (mutating webhook) after the round trip through the v1beta1 storage
    /// version (conversion webhook, both ways).
    pub async fn wait_until_webhooks_serve(&self) -> Result<()> {
        self.wait_for_validation(true).await?;
        let deadline = Instant::now() + PROPAGATION_TIMEOUT;
        let mut last = String::new();
        while Instant::now() < deadline {
            match self.dry_run_create(probe_valid()).await {
                Ok(obj) => {
                    let version = obj.data["spec"]["version"].as_str().unwrap_or_default();
                    if !version.is_empty() {
                        return Ok(());
                    }
                    last = format!("not defaulted: {}", obj.data["spec"]);
                }
                Err(e) => last = format!("{e:#}"),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("mutating/conversion webhooks not serving after {PROPAGATION_TIMEOUT:?}: {last}")
    }

    /// Waits until the validating webhook is (`true`) or is not (`false`) called.
    pub async fn wait_for_validation(&self, active: bool) -> Result<()> {
        let deadline = Instant::now() + PROPAGATION_TIMEOUT;
        let mut last = String::new();
        while Instant::now() < deadline {
            match self.dry_run_create(probe_invalid()).await {
                Ok(_) if !active => return Ok(()),
                Ok(_) => last = "the invalid probe was accepted".into(),
                Err(e) => {
                    let denied_by_us = matches!(
                        e.downcast_ref::<kube::Error>(),
                        Some(kube::Error::Api(s)) if s.code == 422 && s.message.contains("spec.tls")
                    );
                    if denied_by_us && active {
                        return Ok(());
                    }
                    last = format!("{e:#}");
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let want = if active { "active" } else { "inactive" };
        bail!("validating webhook not {want} after {PROPAGATION_TIMEOUT:?}: {last}")
    }

    async fn dry_run_create(&self, obj: serde_json::Value) -> Result<DynamicObject> {
        let obj: DynamicObject = serde_json::from_value(obj).context("probe object")?;
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client()?, "default", &natscluster_resource("v1alpha2"));
        let pp = PostParams {
            dry_run: true,
            field_manager: Some(FIELD_MANAGER.into()),
        };
        Ok(api.create(&pp, &obj).await?)
    }
}

/// The `natsclusters` resource in `version` (`v1alpha2` or `v1beta1`).
pub fn natscluster_resource(version: &str) -> ApiResource {
    ApiResource {
        group: "nats.io".into(),
        version: version.into(),
        api_version: format!("nats.io/{version}"),
        kind: "NatsCluster".into(),
        plural: "natsclusters".into(),
    }
}

/// Allowed by the CRD schema, denied by our validation: gateway TLS without a gateway.
fn probe_invalid() -> serde_json::Value {
    json!({
        "apiVersion": "nats.io/v1alpha2",
        "kind": "NatsCluster",
        "metadata": {"name": "e2e-probe-invalid"},
        "spec": {"size": 1, "tls": {"gatewaySecret": "gw-tls"}}
    })
}

fn probe_valid() -> serde_json::Value {
    json!({
        "apiVersion": "nats.io/v1alpha2",
        "kind": "NatsCluster",
        "metadata": {"name": "e2e-probe-valid"},
        "spec": {"size": 1}
    })
}
