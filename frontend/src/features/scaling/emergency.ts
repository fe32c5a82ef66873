import { when } from "../../lib/format";

/** The alert rule a scaling policy follows into emergency mode (the API's `emergency_alert_rule`). */
export interface EmergencyRule {
  /** Null, with the name and state, for a rule of a service hidden from this viewer. */
  id: number | null;
  name: string | null;
  /** Another service's rule, hidden from this viewer: only that the policy follows one is told. */
  hidden?: boolean;
  enabled: boolean | null;
  /** Enabled and firing now. */
  firing: boolean | null;
}

export interface EmergencySource {
  emergency_mode: boolean;
  /** Set by hand in the admin: holds emergency mode on whatever the rule does. */
  emergency_manual?: boolean;
  /** When the hand's setting ends (null: when switched off by hand). */
  emergency_until?: string | null;
  emergency_alert_rule?: EmergencyRule | null;
  floor_replicas: number;
}

/**
 * Emergency mode in words, with who set it: by hand (the admin), or the alert rule firing, or both; and
 * what would turn it on while it is off. A hand-set mode looked the same as a rule's before, so an
 * operator could not tell whether turning the rule off would end it.
 */
export function emergencyText(policy: EmergencySource): { on: boolean; text: string } {
  const rule = policy.emergency_alert_rule ?? null;
  if (rule?.hidden) return hiddenRuleText(policy);
  const ruleName = rule ? `alert rule “${rule.name}”` : null;
  if (!policy.emergency_mode) {
    if (!rule) return { on: false, text: "Emergency mode: off" };
    if (!rule.enabled) return { on: false, text: `Emergency mode: off (${ruleName} is disabled)` };
    return { on: false, text: `Emergency mode: off (turns on while ${ruleName} fires)` };
  }
  const floor = `, minimum lifted to ${policy.floor_replicas} replicas`;
  if (policy.emergency_manual) {
    const also = rule?.firing ? `; ${ruleName} is firing too` : "";
    const until = policy.emergency_until ? ` until ${when(policy.emergency_until)}` : "";
    return { on: true, text: `Emergency mode: on (set by hand${until}${also})${floor}` };
  }
  if (rule?.firing) return { on: true, text: `Emergency mode: on (set by ${ruleName}, firing)${floor}` };
  // Neither: the checker ends it within a minute (the rule resolved or was turned off since).
  return { on: true, text: `Emergency mode: on, ending (${ruleName ?? "its alert rule"} no longer fires)${floor}` };
}

/** A rule this viewer may not see: neither its name nor whether it fires, only that the policy follows one. */
function hiddenRuleText(policy: EmergencySource): { on: boolean; text: string } {
  const rule = "an alert rule you cannot see";
  if (!policy.emergency_mode) return { on: false, text: `Emergency mode: off (turns on while ${rule} fires)` };
  const floor = `, minimum lifted to ${policy.floor_replicas} replicas`;
  if (policy.emergency_manual) {
    const until = policy.emergency_until ? ` until ${when(policy.emergency_until)}` : "";
    return { on: true, text: `Emergency mode: on (set by hand${until})${floor}` };
  }
  return { on: true, text: `Emergency mode: on (set by ${rule})${floor}` };
}
