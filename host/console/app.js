// The civic-rules console: a small single-page app on the same JSON API as every other
// client, signed in with an API token and bound by the same access control. No build step,
// no framework: the server embeds these files in its binary.
//
// Every piece of text that comes from a case (descriptions, reasons, replies) is placed with
// textContent, never as HTML, so a citizen's words cannot run as script.

const STATUSES = ["received", "rejected", "transferred", "answered-at-intake", "pending-dispatch",
  "dispatched", "signed", "in-progress", "replied", "callback", "closed", "merged"];
const HOOKS = ["eligibility", "routing", "escalation"];
const CHANNELS = ["phone", "app", "wechat", "web", "grid", "other"];
const KINDS = ["consultation", "help", "complaint", "report", "suggestion", "praise"];

const L = {
  zh: {
    "nav.board": "工单看板", "nav.intake": "受理登记", "nav.plugins": "规则插件", "nav.overview": "区域概览",
    "signin.title": "登录", "signin.token": "访问令牌", "signin.go": "登录", "signin.hint": "使用管理员或区域分配的 API 令牌（civic_…）。",
    "signout": "退出", "lang": "EN", "who.city": "全市",
    "role.city-admin": "市级管理员", "role.district-admin": "区管理员", "role.dispatcher": "派单员",
    "role.unit-handler": "承办单位", "role.intake-agent": "话务员",
    "f.district": "区域", "f.status": "状态", "f.unit": "承办单位", "f.category": "类别", "f.light": "督办灯",
    "f.order": "排序", "f.any": "全部", "f.apply": "筛选", "order.newest": "最新优先", "order.urgent": "最紧急优先",
    "light.red": "红灯（超期）", "light.yellow": "黄灯（预警）", "light.green": "绿灯（正常）",
    "col.light": "灯", "col.id": "工单号", "col.category": "类别", "col.status": "状态", "col.handler": "承办单位",
    "col.created": "受理时间", "col.due": "办结期限",
    "board.title": "工单看板", "board.empty": "没有符合条件的工单。", "page.next": "下一页", "page.first": "第一页",
    "case.title": "工单", "case.facts": "基本信息", "case.deadlines": "时限", "case.timeline": "处理经过",
    "case.actions": "可执行操作", "case.noactions": "当前令牌对此工单无可执行操作。",
    "case.district": "区域", "case.category": "类别", "case.kind": "类型", "case.channel": "渠道", "case.status": "状态",
    "case.handler": "主办单位", "case.co": "协办单位", "case.location": "地点", "case.flags": "标记",
    "case.description": "诉求内容", "case.mediation": "调解", "case.supervised": "督办单位", "case.extension": "延期申请",
    "case.satisfaction": "回访", "cb.satisfied": "满意", "cb.resolved": "已解决", "case.created": "受理时间", "case.returned": "退单单位", "case.version": "版本",
    "dl.sign_off": "签收期限", "dl.first_contact": "首次联系期限", "dl.resolution": "办结期限", "dl.warning": "黄灯预警",
    "act.dispatch": "派单", "act.queue-for-dispatch": "进入派单",
    "act.reject": "不予受理", "act.transfer": "转紧急热线", "act.answer-at-intake": "一线答复", "act.submit": "提交", "act.cancel": "取消",
    "ev.received": "受理", "ev.transition": "状态变更", "ev.decision": "规则决定", "ev.rule-failure": "规则失败",
    "ev.escalation": "督办升级", "ev.by": "操作人", "ev.plugin": "规则插件", "left.went": "工单已转至 {where}。", "left.notyours": "该工单已不再由本单位承办，无法继续查看。", "left.board": "返回工单看板", "ev.system": "系统",
    "why.routed": "派至", "why.because": "依据", "why.admissible": "予以受理", "why.rejected": "不予受理",
    "why.transferred": "转至", "why.mediation": "调解", "why.noop": "无意见（由市级默认规则决定）",
    "why.fallback": "（市级默认规则兜底）", "why.fuel": "燃料", "why.actions": "措施", "why.none": "无需措施",
    "intake.title": "受理登记", "intake.community": "社区/村", "intake.grid": "网格", "intake.address": "详细地址",
    "intake.phone": "来电号码（仅存哈希）", "intake.urgent": "紧急", "intake.flags": "情形标记", "intake.pick": "请选择诉求类别", "intake.dispute": "纠纷信息",
    "intake.dtype": "纠纷类型", "intake.amount": "涉及金额（元）", "intake.chambers": "当事人所属商会（逗号分隔，无则留空）",
    "intake.submit": "提交并派单", "intake.result": "派单结果", "intake.open": "查看工单", "intake.none": "（无）",
    "plugins.title": "规则插件", "plugins.active": "当前生效", "plugins.versions": "版本", "plugins.deployed": "部署",
    "plugins.by": "部署人", "plugins.size": "大小", "plugins.activate": "启用", "plugins.rollback": "回滚到上一版本",
    "plugins.confirm": "启用后，近期案件中有 {n} 件的处理结果将改变：", "plugins.confirm.yes": "仍然启用", "plugins.confirm.no": "取消",
    "plugins.citystands": "（本版本无意见，由全市默认规则决定）",
    "plugins.upload": "上传新版本", "plugins.file": "组件文件 (.wasm)", "plugins.name": "名称", "plugins.deploy": "部署",
    "plugins.dryrun": "试运行", "plugins.case": "工单 JSON", "plugins.pick": "从样例选择", "plugins.version": "版本",
    "plugins.run": "运行", "plugins.citydefault": "使用市级默认", "plugins.history": "变更记录", "plugins.isactive": "生效中",
    "plugins.suspended": "已暂停",
    "ov.title": "区域概览", "ov.status": "在办工单（按状态）", "ov.unit": "在办工单（按承办单位）", "ov.lights": "督办灯",
    "ov.decisions": "每日规则决定", "ov.failures": "规则失败", "ov.plugin": "插件", "ov.days": "天数",
    "nav.assessment": "考核", "as.title": "考核指标", "as.month": "月份", "as.scope": "范围", "as.unit": "承办单位",
    "as.kind": "类别", "as.overdue": "当前超期", "as.nodata": "无数据", "as.chart": "各单位", "as.trend": "近六个月",
    "as.none": "本期没有可统计的工单。", "as.city": "全市合计", "as.district": "区合计",
    "err.network": "无法连接服务器", "ok.done": "已完成", "ok.deployed": "已部署版本",
  },
  en: {
    "nav.board": "Case board", "nav.intake": "Intake", "nav.plugins": "Plug-ins", "nav.overview": "Overview",
    "signin.title": "Sign in", "signin.token": "Access token", "signin.go": "Sign in", "signin.hint": "Use an API token (civic_…) issued by an administrator.",
    "signout": "Sign out", "lang": "中文", "who.city": "city-wide",
    "role.city-admin": "City admin", "role.district-admin": "District admin", "role.dispatcher": "Dispatcher",
    "role.unit-handler": "Unit handler", "role.intake-agent": "Intake agent",
    "f.district": "District", "f.status": "Status", "f.unit": "Unit", "f.category": "Category", "f.light": "Light",
    "f.order": "Order", "f.any": "Any", "f.apply": "Filter", "order.newest": "Newest first", "order.urgent": "Most urgent first",
    "light.red": "Red (overdue)", "light.yellow": "Yellow (warning)", "light.green": "Green (on time)",
    "col.light": "Light", "col.id": "Case", "col.category": "Category", "col.status": "Status", "col.handler": "Handler",
    "col.created": "Received", "col.due": "Resolution due",
    "board.title": "Case board", "board.empty": "No cases match.", "page.next": "Next page", "page.first": "First page",
    "case.title": "Case", "case.facts": "Facts", "case.deadlines": "Deadlines", "case.timeline": "Timeline",
    "case.actions": "Actions", "case.noactions": "This token can take no action on this case now.",
    "case.district": "District", "case.category": "Category", "case.kind": "Kind", "case.channel": "Channel", "case.status": "Status",
    "case.handler": "Handler", "case.co": "Co-handlers", "case.location": "Location", "case.flags": "Flags",
    "case.description": "Description", "case.mediation": "Mediation", "case.supervised": "Supervised by", "case.extension": "Extension",
    "case.satisfaction": "Callback", "cb.satisfied": "satisfied", "cb.resolved": "resolved", "case.created": "Received", "case.returned": "Returned by", "case.version": "Version",
    "dl.sign_off": "Sign-off", "dl.first_contact": "First contact", "dl.resolution": "Resolution", "dl.warning": "Yellow light",
    "act.dispatch": "Dispatch", "act.queue-for-dispatch": "Queued for dispatch",
    "act.reject": "Reject", "act.transfer": "Transfer", "act.answer-at-intake": "Answered at intake", "act.submit": "Submit", "act.cancel": "Cancel",
    "ev.received": "Received", "ev.transition": "Status", "ev.decision": "Rule decision", "ev.rule-failure": "Rule failure",
    "ev.escalation": "Escalation", "ev.by": "by", "ev.plugin": "plug-in", "left.went": "The case went to {where}.", "left.notyours": "It is no longer your unit's, so you can no longer open it.", "left.board": "Back to the board", "ev.system": "the system",
    "why.routed": "routed to", "why.because": "because", "why.admissible": "admissible", "why.rejected": "rejected",
    "why.transferred": "transferred to", "why.mediation": "mediation", "why.noop": "no opinion (the city default decided)",
    "why.fallback": "(city default fallback)", "why.fuel": "fuel", "why.actions": "actions", "why.none": "nothing to do",
    "intake.title": "Take a case in", "intake.community": "Community / village", "intake.grid": "Grid", "intake.address": "Address",
    "intake.phone": "Caller phone (stored only as a hash)", "intake.urgent": "Urgent", "intake.flags": "Flags", "intake.pick": "Choose a category", "intake.dispute": "Dispute",
    "intake.dtype": "Dispute type", "intake.amount": "Amount (CNY)", "intake.chambers": "Parties' chambers of commerce (comma-separated, blank for none)",
    "intake.submit": "Submit and dispatch", "intake.result": "Where it went", "intake.open": "Open the case", "intake.none": "(none)",
    "plugins.title": "Plug-ins", "plugins.active": "Active", "plugins.versions": "Versions", "plugins.deployed": "Deployed",
    "plugins.by": "By", "plugins.size": "Size", "plugins.activate": "Activate", "plugins.rollback": "Roll back",
    "plugins.confirm": "Activating changes what happens to {n} of the recent cases:", "plugins.confirm.yes": "Activate anyway", "plugins.confirm.no": "Cancel",
    "plugins.citystands": "(no opinion: the city default decides)",
    "plugins.upload": "Upload a new version", "plugins.file": "Component (.wasm)", "plugins.name": "Name", "plugins.deploy": "Deploy",
    "plugins.dryrun": "Dry run", "plugins.case": "Case JSON", "plugins.pick": "Pick a sample", "plugins.version": "Version",
    "plugins.run": "Run", "plugins.citydefault": "City default in use", "plugins.history": "History", "plugins.isactive": "active",
    "plugins.suspended": "suspended",
    "ov.title": "District overview", "ov.status": "Open cases by status", "ov.unit": "Open cases by unit", "ov.lights": "Lights",
    "ov.decisions": "Rule decisions per day", "ov.failures": "Rule failures", "ov.plugin": "Plug-in", "ov.days": "Days",
    "nav.assessment": "Assessment", "as.title": "Assessment", "as.month": "Month", "as.scope": "Scope", "as.unit": "Unit",
    "as.kind": "Kind", "as.overdue": "Overdue now", "as.nodata": "no data", "as.chart": "By unit", "as.trend": "Last six months",
    "as.none": "Nothing to count in this period.", "as.city": "City total", "as.district": "District total",
    "err.network": "Cannot reach the server", "ok.done": "Done", "ok.deployed": "Deployed version",
  },
};

const ST = {
  zh: { "received": "已受理", "rejected": "不予受理", "transferred": "已转紧急热线", "answered-at-intake": "一线办结",
    "pending-dispatch": "待派单", "dispatched": "已派单", "signed": "已签收", "in-progress": "办理中", "replied": "已回复",
    "callback": "已回访", "closed": "已办结", "merged": "已合并" },
  en: { "received": "Received", "rejected": "Rejected", "transferred": "Transferred to an emergency line",
    "answered-at-intake": "Answered at intake", "pending-dispatch": "Pending dispatch", "dispatched": "Dispatched",
    "signed": "Signed", "in-progress": "In progress", "replied": "Replied", "callback": "Called back", "closed": "Closed",
    "merged": "Merged" },
};

const UNIT_KIND_NAMES = { zh: { city_centre: "市热线中心", district_desk: "区分中心", community: "社区", village: "村",
  grid: "网格", department: "职能部门", police: "公安", mediation_committee: "调解委员会", industry_mediation: "行业调解",
  chamber_mediation: "商会调解", pre_litigation_centre: "诉前调解", port_station: "渔港站" }, en: {} };
/** What each API error code means, for people (English keeps the server's words). */
const ERR_NAMES = {
  zh: {
    "bad-request": "请求内容有误", unauthorized: "访问令牌无效、已过期或已吊销，请重新登录",
    forbidden: "当前令牌无权执行此操作", "not-found": "未找到，或不在当前令牌的可见范围内",
    "method-not-allowed": "不支持的请求方式", conflict: "工单已被他人更新，或当前状态不允许此操作，请刷新后重试",
    "payload-too-large": "内容过大", "unsupported-media-type": "内容格式不受支持", unprocessable: "输入未通过校验",
    "too-many-requests": "请求过于频繁，请稍后再试", unavailable: "服务暂不可用，请稍后再试", internal: "服务器内部错误",
  },
  en: {},
};
const KIND_NAMES = { zh: { consultation: "咨询", help: "求助", complaint: "投诉", report: "举报", suggestion: "建议", praise: "表扬" }, en: {} };
const CHANNEL_NAMES = { zh: { phone: "电话", app: "App", wechat: "微信", web: "网站", grid: "网格员上报", open311: "Open311", other: "其他" }, en: {} };
const FLAG_NAMES = { zh: { litigation: "已起诉", arbitration: "已申请仲裁", reconsideration: "已申请行政复议",
  petition: "信访事项", fire: "火情", "crime-in-progress": "正在发生的违法犯罪", "medical-emergency": "医疗急救",
  "traffic-injury": "交通事故有人受伤", criminal: "涉嫌刑事犯罪", "repeat-no-new-facts": "重复诉求无新情况", repeat: "重复来电" }, en: {} };
const flagName = (f) => FLAG_NAMES[state.lang][f] || f;
const kindName = (k) => KIND_NAMES[state.lang][k] || k;
const channelName = (c) => CHANNEL_NAMES[state.lang][c] || c;

// Reason codes the bundled rules use, in words; unknown codes are shown as they are.
const REASONS = {
  zh: { "grid.admissible": "属网格准入事项", "grid.not-admissible": "不属网格准入事项", "route.grid": "派至所在网格",
    "route.community": "派至所在社区", "route.department": "派至主管部门", "route.desk": "派至区受理台",
    "route.mediation": "派至调解组织", "route.consultation": "咨询类", "route.returned-skip": "跳过已退单单位",
    "route.grid-co-handler": "网格协办", "route.no-rule": "无匹配规则", "deadline.urgent": "紧急时限",
    "mediation.chamber": "商会调解", "mediation.community": "社区调解", "mediation.district": "区级调解",
    "mediation.industry": "行业调解", "mediation.pre-litigation": "诉前调解",
    "admissibility.litigation": "已进入诉讼", "admissibility.arbitration": "已进入仲裁",
    "admissibility.reconsideration": "已进入复议", "admissibility.petition": "信访事项", "admissibility.repeat": "重复诉求无新情况",
    "escalation.warning": "黄灯预警", "escalation.sign-off-missed": "超时未签收", "escalation.first-contact-missed": "超时未联系",
    "escalation.resolution-missed": "超期未办结", "escalation.overdue-notice": "超期通报", "escalation.move-up": "上提一级",
    "escalation.repeat": "重复来电" },
  en: {},
};

const state = {
  lang: localStorage.getItem("civic.lang") || "zh",
  token: sessionStorage.getItem("civic.token") || "",
  me: null,
  dir: null,
  // The actions people take on cases, as the server declares them (GET /v1/actions).
  actions: {},
  // Names and roles of the tokens that acted on the case shown (GET …/history).
  actors: {},
};

const t = (k) => (L[state.lang] && L[state.lang][k]) || L.en[k] || k;
// An action's label: a declared one's own, else the system action's from the dictionary.
const labelOf = (pair) => pair[state.lang === "zh" ? 0 : 1];
const actionLabel = (name) => (state.actions[name] ? labelOf(state.actions[name].label) : t(`act.${name}`));
const statusName = (s) => ST[state.lang][s] || s;
const reasonText = (r) => {
  const w = REASONS[state.lang][r];
  return w ? `${w} (${r})` : r;
};

/** Builds an element; strings become text nodes, never markup. */
function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "value") el.value = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const kid of kids.flat(Infinity)) {
    if (kid === undefined || kid === null || kid === false) continue;
    el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return el;
}

function flash(msg, kind = "error") {
  const f = document.getElementById("flash");
  f.hidden = !msg;
  f.className = kind;
  f.textContent = msg || "";
}

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** Calls the API; rejects with an ApiError carrying the server's code and message. */
async function api(method, path, body, contentType = "application/json") {
  const headers = { authorization: `Bearer ${state.token}` };
  let payload;
  if (body !== undefined) {
    headers["content-type"] = contentType;
    payload = contentType === "application/json" ? JSON.stringify(body) : body;
  }
  let res;
  try {
    res = await fetch(path, { method, headers, body: payload });
  } catch (e) {
    throw new ApiError(0, "network", t("err.network"));
  }
  const text = await res.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch (e) { json = null; }
  if (!res.ok) {
    const err = (json && json.error) || {};
    if (res.status === 401 && path !== "/v1/me") signOut();
    const code = err.code || String(res.status);
    const detail = err.message || text;
    // The headline in the console's language; the server's own words (specific, and what
    // an operator searches the logs for) after it.
    const said = ERR_NAMES[state.lang][code];
    throw new ApiError(res.status, code, `${res.status} ${code}: ${said ? `${said}（${detail}）` : detail}`);
  }
  return json;
}

const fmt = (ms) => {
  if (ms === null || ms === undefined) return "—";
  const d = new Date(ms);
  const p = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}`;
};
const unitName = (id) => {
  if (!id) return "—";
  const u = state.dir && state.dir.units.find((x) => x.id === id);
  return u ? u.name : id;
};
const catName = (code) => {
  const c = state.dir && state.dir.categories.find((x) => x.code === code);
  return c ? c.name : code;
};
const lamp = (l) => h("span", { class: `lamp ${l || ""}`, title: l ? t(`light.${l}`) : "—", "data-light": l || "none" });
const isAdmin = () => state.me && ["city-admin", "district-admin"].includes(state.me.role);
const districtsOf = () => (state.dir ? state.dir.districts : []);
/** A district as people say it: its desk's name up to 区, 县 or 市 (`吉阳区`); the id in English. */
const districtName = (id) => {
  if (id === "city") return t("who.city");
  const desk = state.dir && state.dir.units && state.dir.units.find((u) => u.id === id);
  if (!desk || state.lang !== "zh") return id;
  const m = desk.name.match(/^.*?[区县市]/);
  return m ? m[0] : desk.name;
};
const HOOK_NAMES = { zh: { eligibility: "受理规则", routing: "派单规则", escalation: "督办规则" }, en: {} };
const hookName = (hook) => HOOK_NAMES[state.lang][hook] || hook;
const defaultDistrict = () => (state.me && state.me.district) || districtsOf()[0] || "";

function signOut() {
  state.token = "";
  state.me = null;
  state.dir = null;
  sessionStorage.removeItem("civic.token");
  location.hash = "#/login";
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") q.set(k, v);
  return q.toString();
}

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, "");
  const [path, qs] = raw.split("?");
  return { parts: path.split("/").filter(Boolean).map(decodeURIComponent), q: new URLSearchParams(qs || "") };
}

function renderChrome(active) {
  document.documentElement.lang = state.lang === "zh" ? "zh-CN" : "en";
  document.getElementById("lang").textContent = t("lang");
  const nav = document.getElementById("nav");
  nav.replaceChildren();
  const who = document.getElementById("who");
  who.replaceChildren();
  if (!state.me) return;
  const role = state.me.role;
  const links = [["board", "#/board"]];
  if (role === "intake-agent" || role === "city-admin" || role === "dispatcher" || role === "district-admin") links.push(["intake", "#/intake"]);
  if (role !== "unit-handler" && role !== "intake-agent") {
    links.push(["plugins", `#/plugins/${defaultDistrict()}`]);
    links.push(["overview", `#/overview/${defaultDistrict()}`]);
  }
  if (role !== "intake-agent") links.push(["assessment", "#/assessment"]);
  for (const [k, href] of links) nav.append(h("a", { href, id: `nav-${k}`, class: k === active ? "on" : "" }, t(`nav.${k}`)));
  who.append(
    `${t(`role.${role}`)} · ${state.me.district ? districtName(state.me.district) : t("who.city")}${state.me.unit ? ` · ${unitName(state.me.unit)}` : ""}`,
    h("button", { type: "button", id: "sign-out", onclick: signOut }, t("signout")),
  );
}

function mount(...nodes) {
  document.getElementById("view").replaceChildren(...nodes);
}

// ---------------------------------------------------------------- sign in

function viewLogin() {
  renderChrome();
  const input = h("input", { id: "token", type: "password", autocomplete: "off", placeholder: "civic_…", required: true });
  mount(h("div", { class: "card login" },
    h("h1", {}, t("signin.title")),
    h("form", { class: "stack", id: "login-form", onsubmit: async (e) => {
      e.preventDefault();
      state.token = input.value.trim();
      try {
        await loadSession();
        sessionStorage.setItem("civic.token", state.token);
        flash("");
        location.hash = "#/board";
      } catch (err) {
        state.token = "";
        flash(err.message);
      }
    } },
    h("label", {}, t("signin.token"), input),
    h("p", { class: "muted" }, t("signin.hint")),
    h("button", { type: "submit", id: "sign-in" }, t("signin.go")))));
  input.focus();
}

async function loadSession() {
  state.me = await api("GET", "/v1/me");
  state.dir = await api("GET", "/v1/directory");
  const declared = await api("GET", "/v1/actions");
  state.actions = Object.fromEntries(declared.actions.map((a) => [a.name, a]));
}

// ---------------------------------------------------------------- board

function select(name, options, value, labelKey) {
  return h("label", {}, t(labelKey),
    h("select", { name, id: `f-${name}` },
      options.map(([v, text]) => h("option", { value: v, selected: v === value ? "selected" : null }, text))));
}

async function viewBoard(q) {
  renderChrome("board");
  const me = state.me;
  const district = me.district || q.get("district") || "";
  const units = state.dir.units.filter((u) => !district || u.id.startsWith(`${district}/`));
  const any = [["", t("f.any")]];
  const form = h("form", { class: "filters card", id: "board-filters", onsubmit: (e) => {
    e.preventDefault();
    const data = Object.fromEntries(new FormData(e.target).entries());
    location.hash = `#/board?${query(data)}`;
  } },
  me.role === "city-admin" ? select("district", any.concat(districtsOf().map((d) => [d, d])), q.get("district") || "", "f.district") : null,
  select("status", any.concat(STATUSES.map((s) => [s, statusName(s)])), q.get("status") || "", "f.status"),
  me.role === "unit-handler" ? null : select("unit", any.concat(units.map((u) => [u.id, u.name])), q.get("unit") || "", "f.unit"),
  select("category", any.concat(state.dir.categories.map((c) => [c.code, c.name])), q.get("category") || "", "f.category"),
  select("light", any.concat(["red", "yellow", "green"].map((l) => [l, t(`light.${l}`)])), q.get("light") || "", "f.light"),
  select("order", [["newest", t("order.newest")], ["urgent", t("order.urgent")]], q.get("order") || "newest", "f.order"),
  h("button", { type: "submit", id: "apply-filters" }, t("f.apply")));
  mount(h("h1", {}, t("board.title")), form, h("p", { class: "muted" }, "…"));
  const params = {};
  for (const k of ["district", "status", "unit", "category", "light", "order", "cursor"]) if (q.get(k)) params[k] = q.get(k);
  params.limit = 25;
  let page;
  try {
    page = await api("GET", `/v1/cases?${query(params)}`);
  } catch (err) {
    flash(err.message);
    return;
  }
  const rows = page.cases.map((c) => h("tr", { "data-case": c.id },
    h("td", {}, lamp(c.light)),
    h("td", {}, h("a", { href: `#/case/${encodeURIComponent(c.id)}`, class: "case-link" }, c.id)),
    h("td", {}, catName(c.category)),
    h("td", { class: "status" }, statusName(c.status)),
    h("td", {}, unitName(c.handler)),
    h("td", {}, fmt(c.created_at)),
    h("td", {}, fmt(c.deadlines && c.deadlines.resolution))));
  const table = page.cases.length
    ? h("div", { class: "table-wrap" }, h("table", { id: "board" },
      h("thead", {}, h("tr", {}, ["light", "id", "category", "status", "handler", "created", "due"].map((k) => h("th", {}, t(`col.${k}`))))),
      h("tbody", {}, rows)))
    : h("p", { class: "muted", id: "board-empty" }, t("board.empty"));
  const base = Object.fromEntries([...q.entries()].filter(([k]) => k !== "cursor"));
  const pager = h("div", { class: "pager" },
    q.get("cursor") ? h("a", { href: `#/board?${query(base)}`, id: "page-first" }, t("page.first")) : null,
    page.next ? h("a", { href: `#/board?${query({ ...base, cursor: page.next })}`, id: "page-next", class: "button" }, t("page.next")) : null);
  mount(h("h1", {}, t("board.title")), form, table, pager);
}

// ---------------------------------------------------------------- case page

/** One decision record in words a dispatcher reads. */
function describeDecision(r) {
  const out = r.output;
  const bits = [];
  if (out === null || out === undefined) {
    bits.push(t("why.noop"));
  } else if (r.hook === "routing") {
    bits.push(`${t("why.routed")} ${unitName(out.lead)}`);
    if (out.co_handlers && out.co_handlers.length) bits.push(`+ ${out.co_handlers.map(unitName).join("、")}`);
  } else if (r.hook === "eligibility") {
    // A contract variant: a bare name, or one key holding the payload.
    const a = out.admissibility;
    const [tag, payload] = typeof a === "string" ? [a, null] : Object.entries(a || {})[0] || ["", null];
    const kind = String(tag).toLowerCase();
    if (kind === "admissible") bits.push(t("why.admissible"));
    else if (kind === "rejected") bits.push(`${t("why.rejected")}: ${JSON.stringify(payload)}`);
    else if (kind === "transferred") bits.push(`${t("why.transferred")} ${JSON.stringify(payload)}`);
    else bits.push(JSON.stringify(a));
    if (out.mediation) bits.push(`${t("why.mediation")}: ${unitName(out.mediation.unit)}`);
  } else if (r.hook === "escalation") {
    const acts = out.actions || [];
    bits.push(acts.length ? `${t("why.actions")}: ${acts.map((a) => JSON.stringify(a)).join("; ")}` : t("why.none"));
  }
  const reasons = (r.reasons || []).map(reasonText);
  return `${bits.join(" ")}${reasons.length ? ` ${t("why.because")} ${reasons.join(", ")}` : ""}`;
}

/** Who acted, as people read it: a token's name and role (its id in the tooltip). */
function actorName(id) {
  const a = state.actors[id];
  if (a) return `${a.name} (${t(`role.${a.role}`)})`;
  if (id.startsWith("plugin:")) return `${t("ev.plugin")} ${id.slice(7)}`;
  if (id === "system") return t("ev.system");
  return id;
}

function timelineItem(e) {
  const w = e.what;
  let cls = "";
  let title;
  let detail = null;
  switch (w.type) {
    case "received":
      title = `${t("ev.received")} · ${channelName(w.channel)}`;
      break;
    case "transition": {
      const name = w.action.action;
      const label = actionLabel(name) !== `act.${name}` ? actionLabel(name) : name;
      const why = w.action.reason || w.action.text || w.action.answer || "";
      title = `${label}: ${statusName(w.from)} → ${statusName(w.to)}`;
      if (name === "dispatch") title += ` · ${unitName(w.action.lead)}`;
      if (why) detail = why;
      break;
    }
    case "decision":
      cls = "decision";
      title = `${t("ev.decision")} [${hookName(w.hook)}] ${describeDecision(w)}`;
      detail = `${w.plugin.name} @ ${w.plugin.version.slice(0, 12)} · ${t("why.fuel")} ${w.fuel_used} · ${w.duration_us} µs${w.fallback ? ` ${t("why.fallback")}` : ""}`;
      break;
    case "rule-failure":
      cls = "failure";
      title = `${t("ev.rule-failure")} [${hookName(w.hook)}] ${w.plugin.name}: ${JSON.stringify(w.failure)} → ${w.fallback}`;
      break;
    case "escalation":
      cls = "escalation";
      title = `${t("ev.escalation")} (${w.timer}): ${w.action} ${w.action === "remind" || w.action === "supervise" || w.action === "move-to" ? unitName(w.detail) : w.detail}`;
      break;
    default:
      title = JSON.stringify(w);
  }
  return h("li", { class: cls, "data-type": w.type },
    h("div", { class: "when", title: e.actor }, `${fmt(e.at)} · ${t("ev.by")} ${actorName(e.actor)}`),
    h("div", { class: "what" }, title),
    detail ? h("div", { class: "detail" }, detail) : null);
}

// The buttons and forms come from the server's declarations: name, route, label, and the
// fields each action asks for beyond the case version.
const INPUT = { text: "text", "long-text": "textarea", number: "number", check: "checkbox" };

/** Whether a unit handler's own action moved the case away from their unit (a return, say):
 * it is no longer theirs to read. */
function leftMyUnit(c) {
  const unit = state.me && state.me.role === "unit-handler" ? state.me.unit : null;
  return unit !== null && c.handler !== unit && !(c.co_handlers || []).includes(unit);
}

/** Where a case went when it left the unit handler's scope, instead of a "not found". */
function leftScope(c) {
  const where = c.handler ? unitName(c.handler) : statusName(c.status);
  mount(
    h("h1", {}, `${t("case.title")} ${c.id}`),
    h("div", { class: "card", id: "left-scope" },
      h("p", {}, t("left.went").replace("{where}", where)),
      h("p", { class: "muted" }, t("left.notyours")),
      h("a", { href: "#/board", id: "back-to-board" }, t("left.board"))),
  );
}

function actionPanel(c) {
  const area = h("div", {});
  const run = async (spec, body) => {
    try {
      const after = await api("POST", spec.path.replace("{id}", encodeURIComponent(c.id)), { ...body, version: c.version });
      flash(`${labelOf(spec.label)}: ${t("ok.done")}`, "ok");
      if (leftMyUnit(after)) return leftScope(after);
      await viewCase(c.id, true);
    } catch (err) {
      flash(err.message);
    }
  };
  const buttons = c.actions.filter((name) => state.actions[name]).map((name) => {
    const spec = state.actions[name];
    return h("button", {
      type: "button", id: `act-${name}`, class: spec.secondary ? "secondary" : "",
      onclick: () => {
        if (!spec.fields.length) return run(spec, {});
        const inputs = {};
        const form = h("form", { class: "action-form stack", id: `form-${name}`, onsubmit: (e) => {
          e.preventDefault();
          const body = {};
          for (const f of spec.fields) {
            if (f.kind === "check") body[f.name] = inputs[f.name].checked;
            else if (f.kind === "number") body[f.name] = Number(inputs[f.name].value);
            else body[f.name] = inputs[f.name].value;
          }
          run(spec, body);
        } },
        h("strong", {}, labelOf(spec.label)),
        spec.fields.map((f) => {
          const kind = INPUT[f.kind];
          inputs[f.name] = kind === "textarea" ? h("textarea", { name: f.name, id: `in-${f.name}` })
            : h("input", { name: f.name, id: `in-${f.name}`, type: kind, min: kind === "number" ? "1" : null, value: kind === "number" ? "3" : null });
          const label = labelOf(f.label);
          return h("label", { class: kind === "checkbox" ? "inline" : "" }, kind === "checkbox" ? [inputs[f.name], label] : [label, inputs[f.name]]);
        }),
        h("div", { class: "actions" },
          h("button", { type: "submit", id: `submit-${name}` }, t("act.submit")),
          h("button", { type: "button", class: "secondary", onclick: () => area.replaceChildren() }, t("act.cancel"))));
        area.replaceChildren(form);
      },
    }, labelOf(spec.label));
  });
  return h("div", { class: "card", id: "actions" }, h("h2", {}, t("case.actions")),
    buttons.length ? h("div", { class: "actions" }, buttons) : h("p", { class: "muted" }, t("case.noactions")), area);
}

async function viewCase(id, keepFlash = false) {
  renderChrome("board");
  if (!keepFlash) flash("");
  let c;
  let history;
  try {
    [c, history] = await Promise.all([
      api("GET", `/v1/cases/${encodeURIComponent(id)}`),
      api("GET", `/v1/cases/${encodeURIComponent(id)}/history`),
    ]);
  } catch (err) {
    mount(h("h1", {}, `${t("case.title")} ${id}`));
    flash(err.message);
    return;
  }
  const fact = (k, v) => [h("dt", {}, t(k)), h("dd", { id: `fact-${k.split(".")[1]}` }, v)];
  const loc = c.location || {};
  const facts = h("dl", { class: "facts" },
    fact("case.status", h("span", { class: "status" }, statusName(c.status))),
    fact("case.district", districtName(c.district)),
    fact("case.category", catName(c.category)),
    fact("case.kind", kindName(c.kind)),
    fact("case.channel", channelName(c.channel)),
    fact("case.handler", unitName(c.handler)),
    fact("case.co", c.co_handlers.length ? c.co_handlers.map(unitName).join("、") : "—"),
    fact("case.location", [unitName(loc.community), loc.grid ? ` / ${unitName(loc.grid)}` : "", loc.address ? ` · ${loc.address}` : ""].join("")),
    fact("case.flags", c.flags.length || c.marks.length ? [...c.flags, ...c.marks].map((f) => h("span", { class: "tag warn" }, flagName(f))) : "—"),
    c.eligibility && c.eligibility.mediation ? fact("case.mediation", `${c.eligibility.mediation.track} · ${unitName(c.eligibility.mediation.unit)}`) : null,
    c.supervised_by ? fact("case.supervised", unitName(c.supervised_by)) : null,
    c.returned_by.length ? fact("case.returned", c.returned_by.map(unitName).join("、")) : null,
    c.extension ? fact("case.extension", `${c.extension.days} · ${c.extension.reason} · ${c.extension.approved === null ? "…" : c.extension.approved}`) : null,
    c.satisfaction ? fact("case.satisfaction", `${t("cb.satisfied")} ${c.satisfaction.satisfied ? "✓" : "✗"} · ${t("cb.resolved")} ${c.satisfaction.resolved ? "✓" : "✗"}${c.satisfaction.note ? ` · ${c.satisfaction.note}` : ""}`) : null,
    fact("case.created", fmt(c.created_at)),
    fact("case.version", String(c.version)),
    fact("case.description", c.description || "—"));
  const dl = c.deadlines || {};
  const deadlines = h("dl", { class: "facts", id: "deadlines" },
    ["sign_off", "first_contact", "resolution", "warning"].flatMap((k) => [h("dt", {}, t(`dl.${k}`)), h("dd", {}, fmt(dl[k]))]));
  state.actors = history.actors || {};
  const events = (history.events || []).slice().sort((a, b) => a.seq - b.seq);
  mount(
    h("h1", {}, `${t("case.title")} `, h("span", { id: "case-id" }, c.id)),
    h("div", { class: "grid2" },
      h("div", { class: "card" }, h("h2", {}, t("case.facts")), facts),
      h("div", {}, h("div", { class: "card" }, h("h2", {}, t("case.deadlines")), deadlines), actionPanel(c))),
    h("div", { class: "card" }, h("h2", {}, t("case.timeline")), h("ol", { class: "timeline", id: "timeline" }, events.map(timelineItem))));
}

// ---------------------------------------------------------------- intake

function viewIntake() {
  renderChrome("intake");
  const dir = state.dir;
  const ds = state.me.district ? [state.me.district] : districtsOf();
  const el = {};
  el.district = h("select", { name: "district", id: "in-district" }, ds.map((d) => h("option", { value: d }, districtName(d))));
  // No category is chosen for the agent: the first in the list is rarely the caller's.
  el.category = h("select", { name: "category", id: "in-category", required: "required" },
    h("option", { value: "", disabled: "disabled", selected: "selected" }, t("intake.pick")),
    dir.categories.map((c) => h("option", { value: c.code }, c.name)));
  el.kind = h("select", { name: "kind", id: "in-kind" }, h("option", { value: "" }, "—"), KINDS.map((k) => h("option", { value: k }, kindName(k))));
  el.channel = h("select", { name: "channel", id: "in-channel" }, CHANNELS.map((k) => h("option", { value: k }, channelName(k))));
  el.community = h("select", { name: "community", id: "in-community" });
  el.grid = h("select", { name: "grid", id: "in-grid" });
  el.address = h("input", { name: "address", id: "in-address" });
  el.phone = h("input", { name: "phone", id: "in-phone", inputmode: "tel" });
  el.urgent = h("input", { type: "checkbox", id: "in-urgent" });
  el.description = h("textarea", { name: "description", id: "in-description" });
  el.flags = (dir.flags || []).map((f) => h("input", { type: "checkbox", value: f, id: `in-flag-${f}` }));
  el.dtype = h("input", { id: "in-dtype" });
  el.amount = h("input", { id: "in-amount", type: "number", min: "0" });
  el.chambers = h("input", { id: "in-chambers" });
  const disputeBox = h("fieldset", { id: "in-dispute" }, h("legend", {}, t("intake.dispute")),
    h("div", { class: "row" }, h("label", {}, t("intake.dtype"), el.dtype), h("label", {}, t("intake.amount"), el.amount)),
    h("label", {}, t("intake.chambers"), el.chambers));
  const fillPlaces = () => {
    const d = el.district.value;
    const places = dir.units.filter((u) => (u.kind === "community" || u.kind === "village") && u.parent === d);
    el.community.replaceChildren(h("option", { value: "" }, t("intake.none")), ...places.map((u) => h("option", { value: u.id }, u.name)));
    fillGrids();
  };
  const fillGrids = () => {
    const grids = dir.units.filter((u) => u.kind === "grid" && u.parent === el.community.value);
    el.grid.replaceChildren(h("option", { value: "" }, t("intake.none")), ...grids.map((u) => h("option", { value: u.id }, u.name)));
  };
  const fillDispute = () => {
    const cat = dir.categories.find((c) => c.code === el.category.value);
    disputeBox.hidden = !(cat && cat.dispute);
    if (cat && cat.dispute) el.dtype.value = cat.dispute;
  };
  el.district.addEventListener("change", fillPlaces);
  el.community.addEventListener("change", fillGrids);
  el.category.addEventListener("change", fillDispute);
  const result = h("div", { id: "intake-result" });
  const form = h("form", { class: "stack card", id: "intake-form", onsubmit: async (e) => {
    e.preventDefault();
    const body = {
      district: el.district.value,
      category: el.category.value,
      channel: el.channel.value,
      urgent: el.urgent.checked,
      location: {},
      flags: el.flags.filter((f) => f.checked).map((f) => f.value),
      description: el.description.value,
    };
    if (el.kind.value) body.kind = el.kind.value;
    if (el.community.value) body.location.community = el.community.value;
    if (el.grid.value) body.location.grid = el.grid.value;
    if (el.address.value) body.location.address = el.address.value;
    if (el.phone.value) body.caller = { phone: el.phone.value };
    if (!disputeBox.hidden) {
      body.dispute = { type: el.dtype.value };
      if (el.amount.value !== "") body.dispute.amount = Number(el.amount.value);
      const ch = el.chambers.value.split(/[,，]/).map((s) => s.trim());
      if (el.chambers.value.trim()) body.dispute.chambers = ch.map((s) => s || null);
    }
    try {
      const c = await api("POST", "/v1/cases", body);
      flash("");
      // The next call is another citizen's: what this one said goes; the desk's own
      // choices (district, channel) stay.
      for (const k of ["phone", "description", "address", "dtype", "amount", "chambers", "kind", "category"]) el[k].value = "";
      el.urgent.checked = false;
      el.flags.forEach((f) => { f.checked = false; });
      el.community.value = "";
      fillGrids();
      fillDispute();
      result.replaceChildren(h("div", { class: "card result" },
        h("h2", {}, t("intake.result")),
        h("p", { id: "result-handler" }, `${c.id} · ${statusName(c.status)} · ${t("why.routed")} ${unitName(c.handler)}`),
        h("ul", { id: "result-reasons" }, c.decisions.map((d) => h("li", {}, `[${hookName(d.hook)}] ${d.plugin}: ${d.reasons.map(reasonText).join(", ") || "—"}${d.fallback ? ` ${t("why.fallback")}` : ""}`))),
        h("p", {}, `${t("dl.resolution")}: ${fmt(c.deadlines.resolution)}`),
        h("a", { href: `#/case/${encodeURIComponent(c.id)}`, id: "result-open", class: "button" }, t("intake.open"))));
    } catch (err) {
      flash(err.message);
    }
  } },
  h("div", { class: "row" }, h("label", {}, t("f.district"), el.district), h("label", {}, t("f.category"), el.category)),
  h("div", { class: "row" }, h("label", {}, t("case.kind"), el.kind), h("label", {}, t("case.channel"), el.channel)),
  h("div", { class: "row" }, h("label", {}, t("intake.community"), el.community), h("label", {}, t("intake.grid"), el.grid)),
  h("div", { class: "row" }, h("label", {}, t("intake.address"), el.address), h("label", {}, t("intake.phone"), el.phone)),
  h("label", {}, t("case.description"), el.description),
  h("label", { class: "inline" }, el.urgent, t("intake.urgent")),
  h("fieldset", {}, h("legend", {}, t("intake.flags")), h("div", { class: "actions" }, el.flags.map((f) => h("label", { class: "inline" }, f, flagName(f.value))))),
  disputeBox,
  h("button", { type: "submit", id: "intake-submit" }, t("intake.submit")));
  fillPlaces();
  fillDispute();
  mount(h("h1", {}, t("intake.title")), h("div", { class: "grid2" }, form, result));
}

// ---------------------------------------------------------------- plug-ins

async function viewPlugins(district) {
  renderChrome("plugins");
  district = district || defaultDistrict();
  const picker = h("select", { id: "plugins-district", onchange: (e) => { location.hash = `#/plugins/${e.target.value}`; } },
    (state.me.role === "city-admin" ? ["city", ...districtsOf()] : [district]).map((d) => h("option", { value: d, selected: d === district ? "selected" : null }, districtName(d))));
  mount(h("h1", {}, t("plugins.title"), " ", picker), h("p", { class: "muted" }, "…"));
  let lists;
  try {
    lists = await Promise.all(HOOKS.map((hook) => api("GET", `/v1/districts/${district}/plugins/${hook}`)));
  } catch (err) {
    flash(err.message);
    return;
  }
  const canManage = isAdmin();
  const refresh = () => viewPlugins(district);
  const act = async (method, path, body, contentType, okMsg) => {
    try {
      const out = await api(method, path, body, contentType);
      flash(okMsg ? okMsg(out) : t("ok.done"), "ok");
      await refresh();
      return out;
    } catch (err) {
      flash(err.message);
      return null;
    }
  };
  const cards = lists.map((l, i) => {
    const hook = HOOKS[i];
    const slot = l.slot || {};
    const rows = l.versions.slice().reverse().map((v) => h("tr", { "data-version": v.version },
      h("td", {}, h("code", {}, v.version.slice(0, 12)), " ", v.version === slot.active ? h("span", { class: "tag", "data-active": "1" }, t("plugins.isactive")) : null,
        (slot.suspended || []).includes(v.version) ? h("span", { class: "tag warn" }, t("plugins.suspended")) : null),
      h("td", {}, v.name),
      h("td", {}, v.deployed_by),
      h("td", {}, fmt(v.deployed_at)),
      h("td", {}, `${Math.round(v.size / 1024)} KiB`),
      h("td", {}, canManage && v.version !== slot.active
        ? h("button", { type: "button", class: "secondary activate", "data-version": v.version,
          onclick: () => activateWithCare(district, hook, v.version, act) }, t("plugins.activate"))
        : null)));
    const file = h("input", { type: "file", accept: ".wasm,application/wasm", id: `upload-${hook}` });
    const name = h("input", { id: `upload-name-${hook}`, placeholder: `${district}-${hook}` });
    const upload = canManage ? h("form", { class: "filters", id: `deploy-${hook}`, onsubmit: async (e) => {
      e.preventDefault();
      if (!file.files.length) return;
      const bytes = await file.files[0].arrayBuffer();
      const q = name.value ? `?${query({ name: name.value })}` : "";
      await act("PUT", `/v1/districts/${district}/plugins/${hook}${q}`, bytes, "application/wasm", (out) => `${t("ok.deployed")} ${out.version || ""}`);
    } }, h("label", {}, t("plugins.file"), file), h("label", {}, t("plugins.name"), name), h("button", { type: "submit" }, t("plugins.deploy"))) : null;
    const history = (slot.history || []).slice(-5).reverse().map((ev) => h("li", {}, `${fmt(ev.at)} ${ev.what} ${ev.version.slice(0, 12)} · ${ev.actor}${ev.detail ? ` · ${ev.detail}` : ""}`));
    return h("div", { class: "card", id: `hook-${hook}` },
      h("h2", {}, hookName(hook), " ", slot.active ? h("code", { class: "active-version" }, slot.active.slice(0, 12)) : h("span", { class: "muted" }, t("plugins.citydefault"))),
      l.versions.length ? h("div", { class: "table-wrap" }, h("table", {},
        h("thead", {}, h("tr", {}, [t("plugins.versions"), t("plugins.name"), t("plugins.by"), t("plugins.deployed"), t("plugins.size"), ""].map((x) => h("th", {}, x)))),
        h("tbody", {}, rows))) : null,
      h("div", { class: "actions" },
        canManage && (slot.previous || []).length ? h("button", { type: "button", class: "secondary", id: `rollback-${hook}`,
          onclick: () => act("POST", `/v1/districts/${district}/plugins/${hook}/rollback`) }, t("plugins.rollback")) : null),
      upload,
      history.length ? h("details", {}, h("summary", {}, t("plugins.history")), h("ul", {}, history)) : null);
  });
  mount(h("h1", {}, t("plugins.title"), " ", picker), ...cards, dryRunCard(district, lists));
}

// Before a version replaces what decides a district's cases, compare the two on recent past
// cases (effective outcomes, as a backtest shows them); when any case would change, say which
// and ask before activating.
async function activateWithCare(district, hook, version, act) {
  const path = `/v1/districts/${district}/plugins/${hook}/versions/${version}/activate`;
  let report = null;
  if (district !== "city") {
    try {
      report = await api("POST", `/v1/districts/${district}/plugins/${hook}/backtest`, { version, sample: 5 });
    } catch (err) {
      report = null; // no comparison (a backtest is running): activate as asked
    }
  }
  if (!report || !report.changed) {
    await act("POST", path);
    return;
  }
  const card = document.getElementById(`hook-${hook}`);
  const side = (c, which) => `${c[which]}${c[`${which}_deadlines`] ? ` (${c[`${which}_deadlines`]})` : ""}${c[`${which}_by_city_default`] ? ` ${t("plugins.citystands")}` : ""}`;
  const panel = h("div", { class: "card warn", id: "activate-confirm" },
    h("p", {}, t("plugins.confirm").replace("{n}", report.changed)),
    h("ul", {}, Object.entries(report.changes).map(([k, n]) => h("li", {}, `${n} × ${k}`))),
    h("ul", { class: "muted" }, report.sample.map((c) => h("li", {}, `${c.case} [${c.kind}]: ${side(c, "active")} → ${side(c, "candidate")}`))),
    h("div", { class: "actions" },
      h("button", { type: "button", id: "activate-confirm-yes", onclick: () => { panel.remove(); act("POST", path); } }, t("plugins.confirm.yes")),
      h("button", { type: "button", class: "secondary", id: "activate-confirm-no", onclick: () => panel.remove() }, t("plugins.confirm.no"))));
  document.getElementById("activate-confirm")?.remove();
  card.append(panel);
}

function dryRunCard(district, lists) {
  const hook = h("select", { id: "dry-hook" }, HOOKS.map((x) => h("option", { value: x }, hookName(x))));
  const version = h("select", { id: "dry-version" });
  const fillVersions = () => {
    const l = lists[HOOKS.indexOf(hook.value)];
    version.replaceChildren(h("option", { value: "" }, t("plugins.active")),
      ...l.versions.map((v) => h("option", { value: v.version }, `${v.version.slice(0, 12)} ${v.name}`)));
  };
  hook.addEventListener("change", fillVersions);
  fillVersions();
  const d = district === "city" ? defaultDistrict() : district;
  const grid = state.dir.units.find((u) => u.kind === "grid" && u.id.startsWith(`${d}/`));
  const sample = { case: { district: d, category: "noise", location: grid ? { community: grid.parent, grid: grid.id } : {}, description: "" } };
  const text = h("textarea", { id: "dry-case", rows: "8" }, JSON.stringify(sample, null, 2));
  const out = h("pre", { id: "dry-out", hidden: true });
  // Or start from a recent case of the district, as it was taken in.
  const pick = h("select", { id: "dry-pick" }, h("option", { value: "" }, "—"));
  const recent = new Map();
  api("GET", `/v1/cases?${query({ district: d, limit: 20 })}`).then((page) => {
    for (const c of page.cases) {
      recent.set(c.id, c);
      pick.append(h("option", { value: c.id }, `${c.id} · ${catName(c.category)}`));
    }
  }).catch(() => {});
  pick.addEventListener("change", () => {
    const c = recent.get(pick.value);
    if (!c) return;
    const loc = {};
    for (const k of ["community", "grid", "address"]) if (c.location[k]) loc[k] = c.location[k];
    const asTaken = {
      district: c.district, category: c.category, kind: c.kind, channel: c.channel,
      urgent: c.urgency === "urgent", location: loc,
      // `repeat` is the platform's mark, not an intake flag.
      flags: c.flags.filter((f) => f !== "repeat"), description: c.description,
    };
    if (c.dispute) asTaken.dispute = c.dispute;
    const body = { case: asTaken };
    if (c.handler) body.handler = c.handler;
    text.value = JSON.stringify(body, null, 2);
  });
  return h("div", { class: "card", id: "dry-run" }, h("h2", {}, t("plugins.dryrun")),
    h("form", { class: "stack", onsubmit: async (e) => {
      e.preventDefault();
      let body;
      try {
        body = JSON.parse(text.value);
      } catch (err) {
        flash(`JSON: ${err.message}`);
        return;
      }
      if (version.value) body.version = version.value;
      try {
        const r = await api("POST", `/v1/districts/${district}/plugins/${hook.value}/dry-run`, body);
        flash("");
        out.hidden = false;
        out.textContent = JSON.stringify(r, null, 2);
      } catch (err) {
        flash(err.message);
      }
    } },
    h("div", { class: "row" }, h("label", {}, "hook", hook), h("label", {}, t("plugins.version"), version)),
    h("label", {}, t("plugins.pick"), pick),
    h("label", {}, t("plugins.case"), text),
    h("button", { type: "submit", id: "dry-submit" }, t("plugins.run"))),
    out);
}

// ---------------------------------------------------------------- overview

/** A horizontal bar chart as SVG; values are counts. */
function bars(entries, color = "#0b5cad") {
  const max = Math.max(1, ...entries.map(([, v]) => v));
  const rowH = 22;
  const labelW = 210;
  const width = 640;
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${Math.max(rowH, entries.length * rowH)}`);
  svg.setAttribute("role", "img");
  entries.forEach(([label, v, c], i) => {
    const y = i * rowH;
    const mk = (tag, attrs, text) => {
      const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
      for (const [k, val] of Object.entries(attrs)) el.setAttribute(k, val);
      if (text !== undefined) el.textContent = text;
      svg.append(el);
    };
    mk("text", { x: labelW - 6, y: y + 15, "text-anchor": "end" }, label.length > 26 ? `${label.slice(0, 25)}…` : label);
    const w = Math.max(2, ((width - labelW - 50) * v) / max);
    mk("rect", { x: labelW, y: y + 4, width: w, height: rowH - 8, fill: c || color, rx: 2 });
    mk("text", { x: labelW + w + 6, y: y + 15 }, String(v));
  });
  return h("div", { class: "chart" }, svg);
}

async function viewOverview(district, q) {
  renderChrome("overview");
  district = district || defaultDistrict();
  const days = q.get("days") || "7";
  const picker = h("select", { id: "overview-district", onchange: (e) => { location.hash = `#/overview/${e.target.value}`; } },
    (state.me.role === "city-admin" ? districtsOf() : [district]).map((d) => h("option", { value: d, selected: d === district ? "selected" : null }, districtName(d))));
  mount(h("h1", {}, t("ov.title"), " ", picker), h("p", { class: "muted" }, "…"));
  let o;
  try {
    o = await api("GET", `/v1/districts/${district}/overview?days=${encodeURIComponent(days)}`);
  } catch (err) {
    flash(err.message);
    return;
  }
  const lightColor = { red: "#c62828", yellow: "#e0a100", green: "#2e7d32" };
  const byStatus = Object.entries(o.open_by_status).map(([s, n]) => [statusName(s), n]);
  const byUnit = Object.entries(o.open_by_unit).sort((a, b) => b[1] - a[1]).slice(0, 12).map(([u, n]) => [u === "unassigned" ? "—" : unitName(u), n]);
  const lights = ["red", "yellow", "green"].map((l) => [t(`light.${l}`), o.lights[l] || 0, lightColor[l]]);
  const perDay = o.days.map((d) => [d.date, Object.values(d.decisions).reduce((a, b) => a + b, 0)]);
  const failures = o.days.map((d) => [d.date, d.failures, "#b3261e"]);
  const plugins = new Map();
  for (const d of o.days) for (const [p, n] of Object.entries(d.decisions)) plugins.set(p, (plugins.get(p) || 0) + n);
  mount(
    h("h1", {}, t("ov.title"), " ", picker),
    h("div", { class: "grid2" },
      h("div", { class: "card", id: "ov-lights" }, h("h2", {}, t("ov.lights")), bars(lights)),
      h("div", { class: "card", id: "ov-status" }, h("h2", {}, t("ov.status")), bars(byStatus))),
    h("div", { class: "grid2" },
      h("div", { class: "card", id: "ov-unit" }, h("h2", {}, t("ov.unit")), bars(byUnit)),
      h("div", { class: "card", id: "ov-days" }, h("h2", {}, t("ov.decisions")), bars(perDay, "#7b1fa2"),
        h("h2", {}, t("ov.failures")), bars(failures))),
    h("div", { class: "card" }, h("h2", {}, t("ov.plugin")), h("div", { class: "table-wrap" }, h("table", { id: "ov-plugins" },
      h("tbody", {}, [...plugins.entries()].map(([p, n]) => h("tr", {}, h("td", {}, h("code", {}, p)), h("td", {}, String(n)))))))));
}

// ---------------------------------------------------------------- assessment

/** `YYYY-MM` of the month `back` months before `month`. */
function monthBefore(month, back) {
  const [y, m] = month.split("-").map(Number);
  const i = y * 12 + (m - 1) - back;
  return `${Math.floor(i / 12)}-${String((i % 12) + 1).padStart(2, "0")}`;
}

/** A rate as the page shows it: percent with both counts, or "no data". */
function rateCell(r) {
  const text = r.rate === null ? t("as.nodata") : `${(r.rate * 100).toFixed(1)}%`;
  return h("td", { class: "num", "data-indicator": r.indicator, title: `${r.numerator} / ${r.denominator}` },
    h("strong", {}, text), h("span", { class: "muted" }, ` ${r.numerator}/${r.denominator}`));
}

/** A line chart as SVG: one point per label, values 0–1 (missing values leave a gap). */
function trend(points) {
  const width = 640, height = 160, pad = 34;
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("role", "img");
  const mk = (tag, attrs, text) => {
    const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [k, val] of Object.entries(attrs)) el.setAttribute(k, val);
    if (text !== undefined) el.textContent = text;
    svg.append(el);
    return el;
  };
  const x = (i) => pad + (i * (width - 2 * pad)) / Math.max(1, points.length - 1);
  const y = (v) => height - pad - v * (height - 2 * pad);
  mk("line", { x1: pad, y1: y(0), x2: width - pad, y2: y(0), stroke: "#999" });
  mk("text", { x: 2, y: y(1) + 4 }, "100%");
  mk("text", { x: 10, y: y(0) + 4 }, "0%");
  let path = "";
  let gap = true;
  points.forEach(([label, v], i) => {
    mk("text", { x: x(i), y: height - 8, "text-anchor": "middle" }, label);
    if (v === null) {
      gap = true;
      return;
    }
    path += `${gap ? "M" : "L"}${x(i)},${y(v)} `;
    gap = false;
    mk("circle", { cx: x(i), cy: y(v), r: 4, fill: "#0b5cad", "data-month": label });
    mk("text", { x: x(i), y: y(v) - 8, "text-anchor": "middle" }, `${(v * 100).toFixed(0)}%`);
  });
  if (path) mk("path", { d: path, fill: "none", stroke: "#0b5cad", "stroke-width": 2 });
  return h("div", { class: "chart", id: "as-trend" }, svg);
}

async function viewAssessment(q) {
  renderChrome("assessment");
  const now = new Date(Date.now() + 8 * 3600 * 1000);
  const month = q.get("month") || now.toISOString().slice(0, 7);
  const district = q.get("district") || "";
  const indicator = q.get("indicator") || "on-time-completion";
  const go = (changes) => {
    const p = new URLSearchParams({ month, district, indicator, ...changes });
    for (const [k, v] of [...p.entries()]) if (!v) p.delete(k);
    location.hash = `#/assessment?${p}`;
  };
  const monthInput = h("input", { type: "month", id: "as-month", value: month, onchange: (e) => go({ month: e.target.value }) });
  const head = () => h("h1", {}, t("as.title"), " ", monthInput);
  mount(head(), h("p", { class: "muted" }, "…"));
  const ask = (m) => api("GET", `/v1/assessment?${query({ month: m, district })}`);
  let a;
  try {
    a = await ask(month);
  } catch (err) {
    flash(err.message);
    return;
  }
  const zh = state.lang === "zh";
  const indicators = a.indicators;
  const label = (i) => (zh ? i.zh : i.id);
  const scopeOptions = state.me.role === "city-admin" ? ["", ...districtsOf()] : [];
  const controls = h("div", { class: "filters" },
    scopeOptions.length ? h("label", {}, t("as.scope"), " ",
      h("select", { id: "as-district", onchange: (e) => go({ district: e.target.value }) },
        scopeOptions.map((d) => h("option", { value: d, selected: d === district ? "selected" : null }, d ? districtName(d) : t("who.city"))))) : "",
    h("label", {}, " ", h("select", { id: "as-indicator", onchange: (e) => go({ indicator: e.target.value }) },
      indicators.map((i) => h("option", { value: i.id, selected: i.id === indicator ? "selected" : null, title: i.definition }, label(i))))));
  const totals = [...(a.city ? [[t("as.city"), a.city]] : []), ...a.districts.map((d) => [`${d.name} · ${t("as.district")}`, d])];
  const row = (name, r, kind, id) => h("tr", { "data-unit": id || "" }, h("td", {}, name),
    h("td", {}, kind ? UNIT_KIND_NAMES[state.lang][kind] || kind.replace(/_/g, " ") : ""),
    ...r.figures.rates.map(rateCell), h("td", { class: "num" }, String(r.figures.overdue_now)));
  const table = h("div", { class: "table-wrap" }, h("table", { id: "as-table" },
    h("thead", {}, h("tr", {}, h("th", {}, t("as.unit")), h("th", {}, t("as.kind")),
      ...indicators.map((i) => h("th", { title: i.definition }, label(i))), h("th", {}, t("as.overdue")))),
    h("tbody", {}, ...totals.map(([n, r]) => row(n, r, "", r.id)), ...a.units.map((u) => row(u.name, u, u.kind, u.id)))));
  // The chosen rate per unit, units with no data left out, highest first.
  const pick = (r) => r.figures.rates.find((x) => x.indicator === indicator);
  const perUnit = a.units.map((u) => [u.name, pick(u)]).filter(([, r]) => r.rate !== null)
    .sort((x, y) => y[1].rate - x[1].rate).slice(0, 20)
    .map(([n, r]) => [n, Math.round(r.rate * 1000) / 10, r.rate < 0.8 ? "#c62828" : "#2e7d32"]);
  // The scope's total over the last six months.
  const months = [5, 4, 3, 2, 1, 0].map((b) => monthBefore(month, b));
  const history = await Promise.all(months.map((m) => (m === month ? Promise.resolve(a) : ask(m).catch(() => null))));
  const scopeTotal = (x) => (x ? (x.city || x.districts[0] || x.units[0]) : null);
  const points = months.map((m, i) => {
    const r = scopeTotal(history[i]);
    return [m.slice(2), r ? pick(r).rate : null];
  });
  const chosen = indicators.find((i) => i.id === indicator);
  mount(
    head(), controls,
    h("p", { class: "muted", id: "as-definition" }, `${label(chosen)}: ${chosen.definition}`),
    a.units.length ? table : h("p", { id: "as-empty" }, t("as.none")),
    h("div", { class: "grid2" },
      h("div", { class: "card", id: "as-units" }, h("h2", {}, `${t("as.chart")} · ${label(chosen)} (%)`), bars(perUnit)),
      h("div", { class: "card" }, h("h2", {}, `${t("as.trend")} · ${label(chosen)}`), trend(points))),
  );
}

// ---------------------------------------------------------------- routing

async function route() {
  const { parts, q } = parseHash();
  if (!state.token) {
    if (parts[0] !== "login") location.hash = "#/login";
    else viewLogin();
    return;
  }
  if (!state.me) {
    try {
      await loadSession();
    } catch (err) {
      flash(err.message);
      signOut();
      return;
    }
  }
  switch (parts[0]) {
    case "case": return viewCase(parts[1]);
    case "intake": return viewIntake();
    case "plugins": return viewPlugins(parts[1]);
    case "overview": return viewOverview(parts[1], q);
    case "assessment": return viewAssessment(q);
    case "login": location.hash = "#/board"; return undefined;
    default: return viewBoard(q);
  }
}

document.getElementById("lang").addEventListener("click", () => {
  state.lang = state.lang === "zh" ? "en" : "zh";
  localStorage.setItem("civic.lang", state.lang);
  route();
});
window.addEventListener("hashchange", () => { flash(""); route(); });
route();
