//! What correct Azure workload identity wiring looks like. Checks compare against these values
//! and `enable` writes them, so the two cannot disagree.

pub const CLIENT_ID_ANNOTATION: &str = "azure.workload.identity/client-id";
pub const TENANT_ID_ANNOTATION: &str = "azure.workload.identity/tenant-id";
pub const USE_LABEL: &str = "azure.workload.identity/use";
pub const TOKEN_AUDIENCE: &str = "api://AzureADTokenExchange";

pub const ENV_CLIENT_ID: &str = "AZURE_CLIENT_ID";
pub const ENV_TENANT_ID: &str = "AZURE_TENANT_ID";
pub const ENV_AUTHORITY_HOST: &str = "AZURE_AUTHORITY_HOST";
pub const ENV_TOKEN_FILE: &str = "AZURE_FEDERATED_TOKEN_FILE";
/// SOPS's own switch in Flux releases before workload identity (`msi` for AAD Pod Identity).
pub const ENV_AUTH_METHOD: &str = "AZURE_AUTH_METHOD";
/// AAD Pod Identity's pod label: its value selects the AzureIdentityBinding.
pub const POD_IDENTITY_LABEL: &str = "aadpodidbinding";

/// The projected token volume of the manual (non-webhook) setup, as the Flux docs lay it out.
pub const MANUAL_TOKEN_VOLUME: &str = "azure-token";
pub const MANUAL_TOKEN_DIR: &str = "/var/run/service-account";
pub const MANUAL_TOKEN_PATH: &str = "azure-token";

/// Where the workload identity webhook puts the token it projects into mutated pods, by
/// release (Azure/azure-workload-identity `pkg/webhook/consts.go` and `webhook.go`): v1.0.0 to
/// v1.5.1 mount the volume `azure-identity-token` at /var/run/secrets/azure/tokens with the
/// token at `azure-identity-token`; v1.6.0 mounts a volume named
/// `azure-workload-identity-reserved-` and a hash of the pod's name at
/// /var/run/secrets/azure/wi, with the token at `token/azure-identity-token`. Either way it
/// sets AZURE_FEDERATED_TOKEN_FILE only when the container does not set it already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookLayout {
    /// v1.0.0 to v1.5.x.
    Tokens,
    /// v1.6.0 and later.
    Reserved,
}

impl WebhookLayout {
    pub const ALL: [WebhookLayout; 2] = [WebhookLayout::Tokens, WebhookLayout::Reserved];

    pub fn token_file(self) -> &'static str {
        match self {
            WebhookLayout::Tokens => "/var/run/secrets/azure/tokens/azure-identity-token",
            WebhookLayout::Reserved => "/var/run/secrets/azure/wi/token/azure-identity-token",
        }
    }

    pub fn mount_path(self) -> &'static str {
        match self {
            WebhookLayout::Tokens => "/var/run/secrets/azure/tokens",
            WebhookLayout::Reserved => "/var/run/secrets/azure/wi",
        }
    }

    pub fn token_path(self) -> &'static str {
        match self {
            WebhookLayout::Tokens => "azure-identity-token",
            WebhookLayout::Reserved => "token/azure-identity-token",
        }
    }

    /// "webhook v1.0-v1.5" or "webhook v1.6+", for messages.
    pub fn releases(self) -> &'static str {
        match self {
            WebhookLayout::Tokens => "webhook releases v1.0.0 to v1.5.x",
            WebhookLayout::Reserved => "webhook v1.6.0 and later",
        }
    }

    /// Which release mutated a pod, told by the volume it added.
    pub fn of_volume(name: &str) -> Option<WebhookLayout> {
        if name == WEBHOOK_TOKEN_VOLUME {
            Some(WebhookLayout::Tokens)
        } else if name.starts_with(WEBHOOK_RESERVED_VOLUME_PREFIX) {
            Some(WebhookLayout::Reserved)
        } else {
            None
        }
    }

    /// The layout whose token file a path is.
    pub fn of_token_file(path: &str) -> Option<WebhookLayout> {
        WebhookLayout::ALL
            .into_iter()
            .find(|l| l.token_file() == path)
    }
}

/// The volume webhook releases before v1.6.0 inject into mutated pods.
pub const WEBHOOK_TOKEN_VOLUME: &str = "azure-identity-token";
/// The start of the volume name webhook v1.6.0 and later inject.
pub const WEBHOOK_RESERVED_VOLUME_PREFIX: &str = "azure-workload-identity-reserved-";

/// The application ID of the AKS AAD server, the `--server-id` kubelogin needs for AKS.
pub const AKS_AAD_SERVER_ID: &str = "6dae42f8-4368-4678-94ff-3960e28e3630";

/// Environment variables whose values are safe to keep and show.
pub const NON_SECRET_ENV: [&str; 6] = [
    ENV_CLIENT_ID,
    ENV_TENANT_ID,
    ENV_AUTHORITY_HOST,
    ENV_TOKEN_FILE,
    ENV_AUTH_METHOD,
    "AZURE_CLIENT_CERTIFICATE_PATH",
];

/// The Flux controllers, in the order Flux installs them.
pub const FLUX_CONTROLLERS: [&str; 6] = [
    "source-controller",
    "kustomize-controller",
    "helm-controller",
    "notification-controller",
    "image-reflector-controller",
    "image-automation-controller",
];

/// An Azure cloud: its Entra authority host, its Resource Manager endpoint, and the suffixes
/// that identify its endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cloud {
    pub name: &'static str,
    pub authority_host: &'static str,
    /// Azure Resource Manager, without a trailing slash; also the audience of its tokens.
    pub arm_endpoint: &'static str,
    pub registry_suffix: &'static str,
    pub storage_suffix: &'static str,
}

pub const AZURE_PUBLIC: Cloud = Cloud {
    name: "AzurePublicCloud",
    authority_host: "https://login.microsoftonline.com/",
    arm_endpoint: "https://management.azure.com",
    registry_suffix: ".azurecr.io",
    storage_suffix: ".blob.core.windows.net",
};

pub const AZURE_US_GOVERNMENT: Cloud = Cloud {
    name: "AzureUSGovernment",
    authority_host: "https://login.microsoftonline.us/",
    arm_endpoint: "https://management.usgovcloudapi.net",
    registry_suffix: ".azurecr.us",
    storage_suffix: ".blob.core.usgovcloudapi.net",
};

pub const AZURE_CHINA: Cloud = Cloud {
    name: "AzureChinaCloud",
    authority_host: "https://login.chinacloudapi.cn/",
    arm_endpoint: "https://management.chinacloudapi.cn",
    registry_suffix: ".azurecr.cn",
    storage_suffix: ".blob.core.chinacloudapi.cn",
};

pub const CLOUDS: [Cloud; 3] = [AZURE_PUBLIC, AZURE_US_GOVERNMENT, AZURE_CHINA];

impl Cloud {
    /// The scope of a token for Resource Manager in this cloud.
    pub fn arm_scope(&self) -> String {
        format!("{}/.default", self.arm_endpoint)
    }

    pub fn by_name(name: &str) -> Option<Cloud> {
        CLOUDS
            .into_iter()
            .find(|c| c.name.eq_ignore_ascii_case(name))
    }

    /// The cloud an authority host belongs to; trailing slashes do not matter.
    pub fn by_authority_host(host: &str) -> Option<Cloud> {
        let trimmed = host.trim_end_matches('/');
        CLOUDS
            .into_iter()
            .find(|c| c.authority_host.trim_end_matches('/') == trimmed)
    }

    /// The cloud whose registry or storage suffix the endpoint host ends with.
    pub fn by_endpoint(url: &str) -> Option<Cloud> {
        let host = host_of(url);
        CLOUDS
            .into_iter()
            .find(|c| host.ends_with(c.registry_suffix) || host.ends_with(c.storage_suffix))
    }
}

/// The host part of a URL or an image reference (`oci://reg.azurecr.io/x`, `reg.azurecr.io/x:tag`,
/// `https://acct.blob.core.windows.net`), lowercased, without port or credentials.
pub fn host_of(url: &str) -> String {
    let without_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = without_scheme.split('/').next().unwrap_or_default();
    let host_port = authority.rsplit('@').next().unwrap_or_default();
    let host = host_port.split(':').next().unwrap_or_default();
    host.to_ascii_lowercase()
}

/// Whether a string is a UUID in the 8-4-4-4-12 hex form Entra IDs use.
pub fn is_uuid(value: &str) -> bool {
    let groups: Vec<&str> = value.split('-').collect();
    let lengths = [8, 4, 4, 4, 12];
    groups.len() == lengths.len()
        && groups
            .iter()
            .zip(lengths)
            .all(|(g, len)| g.len() == len && g.chars().all(|c| c.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_of_handles_schemes_images_and_ports() {
        assert_eq!(
            host_of("oci://MyReg.azurecr.io/charts/app"),
            "myreg.azurecr.io"
        );
        assert_eq!(host_of("myreg.azurecr.cn/app:v1"), "myreg.azurecr.cn");
        assert_eq!(
            host_of("https://acct.blob.core.windows.net:443"),
            "acct.blob.core.windows.net"
        );
        assert_eq!(
            host_of("https://org@dev.azure.com/org/project/_git/repo"),
            "dev.azure.com"
        );
    }

    #[test]
    fn uuid_shape() {
        assert!(is_uuid("6dae42f8-4368-4678-94ff-3960e28e3630"));
        assert!(!is_uuid("6dae42f8-4368-4678-94ff-3960e28e363"));
        assert!(!is_uuid("managed identity client id"));
        assert!(!is_uuid("6dae42f8_4368-4678-94ff-3960e28e3630"));
    }

    #[test]
    fn clouds_by_endpoint_and_authority() {
        assert_eq!(
            Cloud::by_endpoint("oci://r.azurecr.cn/x"),
            Some(AZURE_CHINA)
        );
        assert_eq!(
            Cloud::by_endpoint("r.azurecr.us/x"),
            Some(AZURE_US_GOVERNMENT)
        );
        assert_eq!(Cloud::by_endpoint("ghcr.io/x"), None);
        assert_eq!(
            Cloud::by_authority_host("https://login.microsoftonline.com"),
            Some(AZURE_PUBLIC)
        );
    }
}
