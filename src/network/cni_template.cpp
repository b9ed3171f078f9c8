// containerd's conf_template, in the subset of Go's text/template its documented templates use.
#include <map>
#include <vector>

#include "common/error.h"
#include "network/cni.h"

namespace berth::network {

namespace {

struct Token {
  bool action = false;
  std::string text;  // literal text, or the action without braces and trim markers
};

std::string Trim(const std::string& s) {
  size_t a = s.find_first_not_of(" \t\r\n"), b = s.find_last_not_of(" \t\r\n");
  return a == std::string::npos ? "" : s.substr(a, b - a + 1);
}

std::vector<Token> Lex(const std::string& t) {
  std::vector<Token> out;
  size_t i = 0;
  while (i < t.size()) {
    size_t open = t.find("{{", i);
    if (open == std::string::npos) {
      out.push_back({false, t.substr(i)});
      break;
    }
    std::string text = t.substr(i, open - i);
    size_t close = t.find("}}", open + 2);
    if (close == std::string::npos) throw Error(Code::kInvalidArgument, "unclosed action \"{{\"");
    std::string body = t.substr(open + 2, close - open - 2);
    bool ltrim = body.size() >= 2 && body[0] == '-' &&
                 (body[1] == ' ' || body[1] == '\n' || body[1] == '\t');
    bool rtrim = body.size() >= 2 && body.back() == '-' &&
                 (body[body.size() - 2] == ' ' || body[body.size() - 2] == '\n' ||
                  body[body.size() - 2] == '\t');
    if (ltrim) {
      text.erase(text.find_last_not_of(" \t\r\n") == std::string::npos
                     ? 0
                     : text.find_last_not_of(" \t\r\n") + 1);
      body = body.substr(1);
    }
    if (rtrim) body.pop_back();
    out.push_back({false, text});
    out.push_back({true, Trim(body)});
    i = close + 2;
    if (rtrim) {
      while (i < t.size() && (t[i] == ' ' || t[i] == '\t' || t[i] == '\r' || t[i] == '\n')) ++i;
    }
  }
  return out;
}

// A value: a string or a list of strings.
struct Value {
  bool list = false;
  std::string s;
  std::vector<std::string> l;
  bool Truth() const { return list ? !l.empty() : !s.empty() && s != "0"; }
  std::string Print() const {
    if (!list) return s;
    std::string o = "[";
    for (size_t i = 0; i < l.size(); ++i) o += (i ? " " : "") + l[i];
    return o + "]";
  }
};

struct Renderer {
  std::vector<Token> toks;
  std::map<std::string, Value> fields;
  std::map<std::string, Value> vars;
  Value dot;

  Value Eval(const std::string& expr) {
    if (expr == ".") return dot;
    if (!expr.empty() && expr[0] == '.') {
      auto it = fields.find(expr.substr(1));
      if (it == fields.end()) throw Error(Code::kInvalidArgument, "unknown field \"" + expr + "\"");
      return it->second;
    }
    if (!expr.empty() && expr[0] == '$') {
      auto it = vars.find(expr);
      if (it == vars.end())
        throw Error(Code::kInvalidArgument, "undefined variable \"" + expr + "\"");
      return it->second;
    }
    throw Error(Code::kInvalidArgument, "unknown template action \"{{" + expr + "}}\"");
  }

  static bool Starts(const std::string& s, const char* w) {
    size_t n = std::char_traits<char>::length(w);
    return s.compare(0, n, w) == 0 && (s.size() == n || s[n] == ' ');
  }

  // Renders tokens from `i` until an {{end}} or {{else}} at this level; returns its index.
  size_t Block(size_t i, std::string* out, const char** stopped) {
    for (; i < toks.size(); ++i) {
      const Token& t = toks[i];
      if (!t.action) {
        if (out) *out += t.text;
        continue;
      }
      if (t.text == "end" || t.text == "else") {
        *stopped = t.text == "end" ? "end" : "else";
        return i;
      }
      if (t.text.rfind("/*", 0) == 0) continue;  // a comment
      if (!out && (Starts(t.text, "range") || Starts(t.text, "if"))) {
        i = MatchEnd(i);  // not rendered: nothing inside is evaluated
      } else if (Starts(t.text, "range")) {
        i = Range(i, out);
      } else if (Starts(t.text, "if")) {
        i = If(i, out);
      } else if (out) {
        *out += Eval(t.text).Print();
      } else {
        Eval(t.text);
      }
    }
    *stopped = nullptr;
    return i;
  }

  // The index of the {{end}} that closes the {{range}} or {{if}} at `i`.
  size_t MatchEnd(size_t i) {
    int depth = 0;
    for (size_t j = i; j < toks.size(); ++j) {
      if (!toks[j].action) continue;
      if (Starts(toks[j].text, "range") || Starts(toks[j].text, "if")) ++depth;
      if (toks[j].text == "end" && --depth == 0) return j;
    }
    throw Error(Code::kInvalidArgument, "missing {{end}} of {{" + toks[i].text + "}}");
  }

  size_t If(size_t i, std::string* out) {
    bool cond = Eval(Trim(toks[i].text.substr(2))).Truth();
    const char* stopped = nullptr;
    size_t j = Block(i + 1, cond ? out : nullptr, &stopped);
    if (!stopped) throw Error(Code::kInvalidArgument, "missing {{end}} of {{if}}");
    if (std::string(stopped) == "else") {
      j = Block(j + 1, cond ? nullptr : out, &stopped);
      if (!stopped || std::string(stopped) != "end")
        throw Error(Code::kInvalidArgument, "missing {{end}} of {{else}}");
    }
    return j;
  }

  size_t Range(size_t i, std::string* out) {
    std::string spec = Trim(toks[i].text.substr(5));
    std::string ivar, evar, expr = spec;
    if (size_t d = spec.find(":="); d != std::string::npos) {
      std::string lhs = Trim(spec.substr(0, d));
      expr = Trim(spec.substr(d + 2));
      if (size_t c = lhs.find(','); c != std::string::npos) {
        ivar = Trim(lhs.substr(0, c));
        evar = Trim(lhs.substr(c + 1));
      } else {
        evar = lhs;
      }
      for (const auto& v : {ivar, evar}) {
        if (!v.empty() && v[0] != '$')
          throw Error(Code::kInvalidArgument, "bad range variable \"" + v + "\"");
      }
    }
    Value list = Eval(expr);
    if (!list.list)
      throw Error(Code::kInvalidArgument, "range over \"" + expr + "\", which is not a list");
    size_t end = MatchEnd(i);
    Value saved_dot = dot;
    for (size_t k = 0; k < list.l.size(); ++k) {
      if (!ivar.empty()) vars[ivar] = Value{false, std::to_string(k), {}};
      if (!evar.empty()) vars[evar] = Value{false, list.l[k], {}};
      dot = Value{false, list.l[k], {}};
      const char* stopped = nullptr;
      Block(i + 1, out, &stopped);
    }
    dot = saved_dot;
    return end;
  }
};

}  // namespace

std::string RenderTemplate(const std::string& tmpl, const std::vector<std::string>& cidrs) {
  Renderer r;
  r.toks = Lex(tmpl);
  bool v4 = false, v6 = false;
  for (const auto& c : cidrs) (c.find(':') != std::string::npos ? v6 : v4) = true;
  std::vector<std::string> routes;
  if (v4) routes.push_back("0.0.0.0/0");
  if (v6) routes.push_back("::/0");
  r.fields["PodCIDR"] = Value{false, cidrs.empty() ? "" : cidrs[0], {}};
  r.fields["PodCIDRRanges"] = Value{true, "", cidrs};
  r.fields["Routes"] = Value{true, "", routes};
  std::string out;
  const char* stopped = nullptr;
  r.Block(0, &out, &stopped);
  if (stopped) throw Error(Code::kInvalidArgument, std::string("unexpected {{") + stopped + "}}");
  return out;
}

}  // namespace berth::network
