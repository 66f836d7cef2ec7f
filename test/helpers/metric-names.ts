import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { REPO_ROOT } from '../harness/test-tools.js';

/** The PromQL of config/prometheus/prometheusrule.yaml and config/grafana/*.json (targets and variables). */
export function shippedQueries(): Array<{ where: string; expr: string }> {
  const rule = parse(readFileSync(join(REPO_ROOT, 'config/prometheus/prometheusrule.yaml'), 'utf8')) as {
    spec: { groups: Array<{ rules: Array<{ alert: string; expr: string }> }> };
  };
  const queries = rule.spec.groups.flatMap((g) => g.rules.map((r) => ({ where: `rule ${r.alert}`, expr: r.expr })));
  const dashboard = JSON.parse(readFileSync(join(REPO_ROOT, 'config/grafana/etcd-backup-dashboard.json'), 'utf8')) as {
    panels: Array<{ title: string; targets: Array<{ expr: string }> }>;
    templating: { list: Array<{ name: string; query: string }> };
  };
  for (const panel of dashboard.panels) for (const t of panel.targets) queries.push({ where: `panel "${panel.title}"`, expr: t.expr });
  for (const v of dashboard.templating.list) if (v.query.includes('(')) queries.push({ where: `variable ${v.name}`, expr: v.query });
  return queries;
}

/** Metric names in PromQL: ours, the standard process_* and nodejs_* ones. */
export function metricNames(expr: string): string[] {
  return [...new Set(expr.match(/\b(?:etcdbackup|process|nodejs)_[a-z0-9_]+\b/g) ?? [])];
}

/** Names a /metrics text declares (# TYPE lines), with histogram series names (_bucket, _sum, _count). */
export function exportedNames(metricsText: string): Set<string> {
  const names = new Set<string>();
  for (const [, name, type] of metricsText.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    names.add(name!);
    if (type === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) names.add(name! + suffix);
  }
  return names;
}
