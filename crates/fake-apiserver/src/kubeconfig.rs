//! Kubeconfig files pointing clients at the fake.

/// How the kubeconfig's user authenticates.
#[derive(Clone, Debug)]
pub enum KubeUser {
    /// A static bearer token.
    Token(String),
    /// A `client.authentication.k8s.io/v1` exec credential plugin.
    Exec {
        command: String,
        args: Vec<String>,
        env: Vec<(String, String)>,
    },
}

/// JSON string literals are valid YAML scalars and need no further escaping.
fn quote(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

/// A kubeconfig whose only context, `fake`, points at `server_url` with
/// namespace `default`.
pub fn kubeconfig_yaml(server_url: &str, user: &KubeUser) -> String {
    let user_block = match user {
        KubeUser::Token(token) => format!("    token: {}\n", quote(token)),
        KubeUser::Exec { command, args, env } => {
            let mut lines = vec![
                "    exec:".to_owned(),
                "      apiVersion: client.authentication.k8s.io/v1".to_owned(),
                format!("      command: {}", quote(command)),
                "      interactiveMode: Never".to_owned(),
            ];
            if args.is_empty() {
                lines.push("      args: []".to_owned());
            } else {
                lines.push("      args:".to_owned());
                lines.extend(args.iter().map(|arg| format!("      - {}", quote(arg))));
            }
            if env.is_empty() {
                lines.push("      env: []".to_owned());
            } else {
                lines.push("      env:".to_owned());
                for (name, value) in env {
                    lines.push(format!("      - name: {}", quote(name)));
                    lines.push(format!("        value: {}", quote(value)));
                }
            }
            lines.join("\n") + "\n"
        }
    };
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n    namespace: default\ncurrent-context: fake\npreferences: {{}}\nusers:\n- name: fake\n  user:\n{user_block}",
        quote(server_url)
    )
}
