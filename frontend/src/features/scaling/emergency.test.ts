import { describe, expect, it } from "vitest";

import { when } from "../../lib/format";
import { emergencyText } from "./emergency";

const rule = (firing: boolean, enabled = true) => ({ id: 3, name: "ED surge", enabled, firing });

describe("emergencyText", () => {
  it("tells emergency mode set by hand from one set by the alert rule", () => {
    expect(emergencyText({ emergency_mode: true, emergency_manual: true, emergency_alert_rule: null, floor_replicas: 8 })).toEqual({
      on: true,
      text: "Emergency mode: on (set by hand), minimum lifted to 8 replicas",
    });
    expect(emergencyText({ emergency_mode: true, emergency_manual: false, emergency_alert_rule: rule(true), floor_replicas: 8 }).text).toBe(
      "Emergency mode: on (set by alert rule “ED surge”, firing), minimum lifted to 8 replicas",
    );
    expect(emergencyText({ emergency_mode: true, emergency_manual: true, emergency_alert_rule: rule(true), floor_replicas: 8 }).text).toBe(
      "Emergency mode: on (set by hand; alert rule “ED surge” is firing too), minimum lifted to 8 replicas",
    );
  });

  it("says when a mode set by hand ends, where it was given an end", () => {
    const until = "2026-12-05T18:00:00Z";
    expect(
      emergencyText({ emergency_mode: true, emergency_manual: true, emergency_until: until, emergency_alert_rule: null, floor_replicas: 8 }).text,
    ).toBe(`Emergency mode: on (set by hand until ${when(until)}), minimum lifted to 8 replicas`);
  });

  it("says what would turn it on while it is off", () => {
    expect(emergencyText({ emergency_mode: false, emergency_alert_rule: null, floor_replicas: 2 })).toEqual({ on: false, text: "Emergency mode: off" });
    expect(emergencyText({ emergency_mode: false, emergency_alert_rule: rule(false), floor_replicas: 2 }).text).toBe(
      "Emergency mode: off (turns on while alert rule “ED surge” fires)",
    );
    expect(emergencyText({ emergency_mode: false, emergency_alert_rule: rule(false, false), floor_replicas: 2 }).text).toBe(
      "Emergency mode: off (alert rule “ED surge” is disabled)",
    );
  });

  it("says a mode whose rule stopped firing is ending", () => {
    expect(emergencyText({ emergency_mode: true, emergency_manual: false, emergency_alert_rule: rule(false), floor_replicas: 8 }).text).toBe(
      "Emergency mode: on, ending (alert rule “ED surge” no longer fires), minimum lifted to 8 replicas",
    );
  });
});

describe("emergencyText with a rule hidden from the viewer", () => {
  const hidden = { id: null, name: null, hidden: true, enabled: null, firing: null };

  it("names neither the rule nor its state", () => {
    expect(emergencyText({ emergency_mode: false, emergency_alert_rule: hidden, floor_replicas: 2 }).text).toBe(
      "Emergency mode: off (turns on while an alert rule you cannot see fires)",
    );
    expect(emergencyText({ emergency_mode: true, emergency_manual: false, emergency_alert_rule: hidden, floor_replicas: 8 })).toEqual({
      on: true,
      text: "Emergency mode: on (set by an alert rule you cannot see), minimum lifted to 8 replicas",
    });
    expect(emergencyText({ emergency_mode: true, emergency_manual: true, emergency_alert_rule: hidden, floor_replicas: 8 }).text).toBe(
      "Emergency mode: on (set by hand), minimum lifted to 8 replicas",
    );
  });
});
