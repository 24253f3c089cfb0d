// Einsum equation parsing; see einsum.h.
#include "compiler/ir/einsum.h"

#include <algorithm>
#include <map>

namespace kiln::ir {
namespace {

int letter_label(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return 26 + (c - 'a');
  return -1;
}

// One term ("bhqd", "...ij"): its letters' labels and where the ellipsis stands (-1: none).
struct Term {
  std::vector<int> letters;
  int ellipsis_at = -1;
};

Result<Term> parse_term(const std::string& s) {
  Term t;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s.compare(i, 3, "...") == 0) {
      if (t.ellipsis_at >= 0) return Status::error("term '" + s + "' has two ellipses");
      t.ellipsis_at = static_cast<int>(t.letters.size());
      i += 2;
      continue;
    }
    const int l = letter_label(s[i]);
    if (l < 0)
      return Status::error("term '" + s + "' has '" + std::string(1, s[i]) +
                           "', which is neither a letter nor part of '...'");
    t.letters.push_back(l);
  }
  return t;
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> r(1);
  for (char c : s) {
    if (c == sep)
      r.emplace_back();
    else
      r.back() += c;
  }
  return r;
}

// A term's labels with its ellipsis expanded to its last `dims` of the `total` ellipsis labels.
std::vector<int> expand(const Term& t, int dims, int total) {
  std::vector<int> r(t.letters.begin(), t.letters.begin() + std::max(t.ellipsis_at, 0));
  for (int j = 0; j < dims; ++j) r.push_back(kEllipsisLabel + total - dims + j);
  r.insert(r.end(), t.letters.begin() + std::max(t.ellipsis_at, 0), t.letters.end());
  return r;
}

}  // namespace

std::string einsum_label_name(int label) {
  if (label >= kEllipsisLabel) return "... dim " + std::to_string(label - kEllipsisLabel);
  return std::string(1, static_cast<char>(label < 26 ? 'A' + label : 'a' + (label - 26)));
}

Result<EinsumLabels> parse_einsum(const std::string& equation, const std::vector<size_t>& ranks) {
  std::string eq;
  for (char c : equation)
    if (c != ' ') eq += c;
  const size_t arrow = eq.find("->");
  if (arrow != std::string::npos && eq.find("->", arrow + 2) != std::string::npos)
    return Status::error("equation has two '->'");
  const std::vector<std::string> lhs = split(eq.substr(0, arrow), ',');
  if (lhs.size() != ranks.size())
    return Status::error("equation has " + std::to_string(lhs.size()) + " input terms for " +
                         std::to_string(ranks.size()) + " inputs");
  std::vector<Term> terms;
  std::vector<int> ellipsis(ranks.size(), 0);
  EinsumLabels r;
  for (size_t i = 0; i < lhs.size(); ++i) {
    KILN_ASSIGN_OR_RETURN(auto t, parse_term(lhs[i]));
    const int named = static_cast<int>(t.letters.size()), rank = static_cast<int>(ranks[i]);
    if (t.ellipsis_at < 0 ? rank != named : rank < named)
      return Status::error("term '" + lhs[i] + "' does not fit input " + std::to_string(i) +
                           " of rank " + std::to_string(rank));
    ellipsis[i] = t.ellipsis_at < 0 ? 0 : rank - named;
    r.ellipsis_dims = std::max(r.ellipsis_dims, ellipsis[i]);
    terms.push_back(t);
  }
  std::map<int, int> count;
  for (size_t i = 0; i < terms.size(); ++i) {
    r.inputs.push_back(expand(terms[i], ellipsis[i], r.ellipsis_dims));
    for (int l : terms[i].letters) ++count[l];
  }
  if (arrow == std::string::npos) {  // implicit: "..." first, then letters seen once, sorted
    for (int j = 0; j < r.ellipsis_dims; ++j) r.output.push_back(kEllipsisLabel + j);
    for (const auto& [l, c] : count)
      if (c == 1) r.output.push_back(l);
    return r;
  }
  KILN_ASSIGN_OR_RETURN(auto out, parse_term(eq.substr(arrow + 2)));
  if (out.ellipsis_at < 0 && r.ellipsis_dims > 0)
    return Status::error("the output term has no '...' for the inputs' ellipsis dims");
  r.output = expand(out, out.ellipsis_at < 0 ? 0 : r.ellipsis_dims, r.ellipsis_dims);
  for (size_t i = 0; i < out.letters.size(); ++i) {
    const int l = out.letters[i];
    if (!count.count(l))
      return Status::error("output label '" + einsum_label_name(l) + "' is in no input term");
    if (std::count(out.letters.begin(), out.letters.end(), l) > 1)
      return Status::error("output label '" + einsum_label_name(l) + "' occurs twice");
  }
  return r;
}

}  // namespace kiln::ir
