//! What an adapter asks of an outside service, declared as data.
//!
//! Each crate that calls a service lists the operations it performs as
//! [`Operation`]s, next to the calls, and tests the list against what its
//! client really sends. Deployment checks read the lists (the Lambda
//! function's manifest) to hold the function's permissions to exactly what
//! its code can do, without reading source text. The type is plain strings,
//! so the core stays free of any SDK.

/// One operation on an outside service, the permission that authorises it,
/// and the cargo feature (of the declaring package) that compiles the call
/// in, if any.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Operation {
    package: &'static str,
    service: &'static str,
    name: &'static str,
    permission: &'static str,
    feature: Option<&'static str>,
}

impl Operation {
    /// `name` (the service's own operation name, `PutItem`) on `service`
    /// (`dynamodb`), authorised by `permission` (`dynamodb:PutItem`),
    /// performed by `package` (give `env!("CARGO_PKG_NAME")`) in every
    /// build of it.
    pub const fn new(
        package: &'static str,
        service: &'static str,
        name: &'static str,
        permission: &'static str,
    ) -> Self {
        Operation {
            package,
            service,
            name,
            permission,
            feature: None,
        }
    }

    /// The same operation, performed only when `package` is built with
    /// `feature`.
    pub const fn behind_feature(self, feature: &'static str) -> Self {
        Operation {
            feature: Some(feature),
            ..self
        }
    }

    /// The package whose code performs it.
    pub const fn package(&self) -> &'static str {
        self.package
    }

    /// The service, as its permissions name it (`dynamodb`, `s3`).
    pub const fn service(&self) -> &'static str {
        self.service
    }

    /// The operation, as the service's API names it (`GetItem`).
    pub const fn name(&self) -> &'static str {
        self.name
    }

    /// The permission that authorises it; for AWS, the IAM action
    /// (`dynamodb:GetItem`).
    pub const fn permission(&self) -> &'static str {
        self.permission
    }

    /// The cargo feature of [`package`](Self::package) that compiles the
    /// call in, or `None` if every build performs it.
    pub const fn feature(&self) -> Option<&'static str> {
        self.feature
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_feature_gate_changes_nothing_else() {
        const PLAIN: Operation = Operation::new("p", "svc", "Op", "svc:Op");
        const GATED: Operation = PLAIN.behind_feature("admin");
        assert_eq!(PLAIN.feature(), None);
        assert_eq!(GATED.feature(), Some("admin"));
        assert_eq!(
            (
                GATED.package(),
                GATED.service(),
                GATED.name(),
                GATED.permission()
            ),
            ("p", "svc", "Op", "svc:Op")
        );
        assert_ne!(PLAIN, GATED);
    }
}
