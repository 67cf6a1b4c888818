"""The closed loop (网格收集—社区研判—部门联动—结果反馈): manual intake, hazards and their
rectification, triage tiers, department referrals, verification and residents' feedback."""
