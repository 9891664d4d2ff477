//! Job error codes that mean no on-premises provisioning agent serves the domain (reference
//! §2.4, part 2 §7), and what to tell the user. Inferred from the job's own status: the agents
//! API is delegated-only, and this costs no call.

/// Agents absent, inactive or unreachable. Left out on purpose:
/// `HybridIdentityServiceInvalidResource` (the Domain setting names no domain the service knows:
/// a configuration error, not an agent one), and `TimeOut` /
/// `HybridSynchronizationActiveDirectoryInternalServerError` (an agent answered, but the domain
/// controller or the run was slow or failed; often transient, and installing agents would not help).
pub const AGENT_CODES: &[&str] = &[
    "HybridIdentityServiceNoAgentsAssigned",
    "HybridIdentityServiceNoActiveAgents",
    "HybridIdentityServiceAgentSignalingError",
];

pub fn is_agent_code(code: Option<&str>) -> bool {
    code.is_some_and(|c| AGENT_CODES.contains(&c))
}

/// What to do, naming the domain.
pub fn advice(domain: &str) -> String {
    format!(
        "No provisioning agent for {domain} is active and reachable: install the Microsoft Entra provisioning agent on a domain-joined server of {domain}, or restart its service (AADConnectProvisioningAgent) where it is installed, and check that the agent shows as active for {domain} in the Microsoft Entra admin center; Microsoft recommends three active agents"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_agent_codes() {
        assert!(is_agent_code(Some("HybridIdentityServiceNoActiveAgents")));
        assert!(is_agent_code(Some("HybridIdentityServiceAgentSignalingError")));
        assert!(!is_agent_code(Some("HybridIdentityServiceInvalidResource")));
        assert!(!is_agent_code(Some("TimeOut")));
        assert!(!is_agent_code(None));
        assert!(advice("contoso.com").contains("three active agents"));
    }
}
