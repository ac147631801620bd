import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { alignTable, compileTable, compileTemplate, GoTime } from '../../src/cli/template.js';

const data = {
  Digest: 'sha256:ab',
  RepoTags: ['1', '2'],
  Labels: { version: '3', 'org.x': 'y' },
  Empty: [],
  Nothing: null,
  Created: new GoTime('2024-05-01T12:34:56.120Z'),
  Layers: [{ Digest: 'a', Size: 1 }, { Digest: 'b', Size: 2 }],
};
const render = (t: string, d: unknown = data) => compileTemplate(t)(d);

describe('--format templates (Go text/template subset)', () => {
  it('fields, nested fields, missing keys as <no value>, nil, lists and maps as Go prints them', () => {
    assert.equal(render('{{.Digest}} {{ .Labels.version }}'), 'sha256:ab 3');
    assert.equal(render('{{.Labels.missing}}|{{.Nothing}}|{{.Nope.Deeper}}'), '<no value>|<nil>|<no value>');
    assert.equal(render('{{.RepoTags}} {{.Labels}} {{.Empty}}'), '[1 2] map[org.x:y version:3] []');
    assert.equal(render('{{.}}', 'x'), 'x');
  });
  it('json, index, join, upper, lower, println', () => {
    assert.equal(render('{{json .RepoTags}} {{json .Labels}} {{json .Nothing}}'), '["1","2"] {"version":"3","org.x":"y"} null');
    assert.equal(render('{{index .Labels "org.x"}}|{{index .Labels "none"}}'), 'y|');
    assert.equal(render('{{join .RepoTags ","}}'), '1,2');
    assert.equal(render('{{upper .Digest}} {{lower "AB"}}'), 'SHA256:AB ab');
    assert.equal(render('{{println .Digest}}'), 'sha256:ab\n');
  });
  it('range (over lists and maps, with else) and if/else with Go truth', () => {
    assert.equal(render('{{range .Layers}}{{.Digest}}={{.Size}};{{end}}'), 'a=1;b=2;');
    assert.equal(render('{{range .Empty}}x{{else}}none{{end}}'), 'none');
    assert.equal(render('{{range .Labels}}{{.}},{{end}}'), 'y,3,');
    assert.equal(render('{{if .RepoTags}}yes{{else}}no{{end}} {{if .Empty}}yes{{else}}no{{end}} {{if .Nothing}}yes{{end}}'), 'yes no ');
  });
  it('trim markers, and times printed as Go prints time.Time (RFC 3339 in json)', () => {
    assert.equal(render('a  {{- .Digest -}}  b'), 'asha256:abb');
    assert.equal(render('{{.Created}}'), '2024-05-01 12:34:56.12 +0000 UTC');
    assert.equal(render('{{json .Created}}'), '"2024-05-01T12:34:56.120Z"');
    assert.equal(String(new GoTime('2024-01-01T00:00:00+02:00')), '2024-01-01 00:00:00 +0200 +0200');
  });
  it('errors name what is wrong, before anything runs', () => {
    for (const [t, why] of [['{{.A', /unclosed/], ['{{printf "%s" .A}}', /printf.*not supported/], ['{{if .A}}x', /if.*without \{\{end\}\}/], ['{{end}}', /end.*without/], ['{{}}', /empty/], ['{{json .A .B}}', /json takes one value/]] as const) {
      assert.throws(() => render(t), (e: Error) => why.test(e.message) && e.message.includes('--format'), t);
    }
  });
  it('tables: a header of column titles, then aligned rows', () => {
    const table = compileTable('table {{.Repository}} {{.Tag}}\t{{.Size}}', { Repository: 'REPOSITORY', Tag: 'TAG', Size: 'SIZE' })!;
    assert.deepEqual(table.header, ['REPOSITORY', 'TAG', 'SIZE']);
    const out = alignTable([table.header, table.row({ Repository: 'localhost/a', Tag: '1', Size: '2 MB' })]);
    // (Go's tabwriter as podman sets it up: columns at least 12 wide, 2 spaces of padding.)
    assert.equal(out, 'REPOSITORY   TAG         SIZE\nlocalhost/a  1           2 MB\n');
    assert.equal(compileTable('{{.Repository}}', {}), undefined);
  });
});
