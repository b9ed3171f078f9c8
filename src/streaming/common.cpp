#include "streaming/protocols.h"

#include <unistd.h>

#include <nlohmann/json.hpp>

#include <thread>

namespace berth::streaming {

std::string Negotiate(const std::vector<std::string>& offered,
                      const std::vector<std::string>& ours) {
  for (const auto& o : ours)
    for (const auto& c : offered)
      if (c == o) return o;
  return "";
}

std::string ExitStatus(bool status_json, int exit_code, const std::string& error) {
  std::string message;
  if (!error.empty()) {
    message = error;
  } else if (exit_code != 0) {
    message = "command terminated with non-zero exit code: error executing command, exit code " +
              std::to_string(exit_code);
  }
  if (!status_json) return message;
  nlohmann::ordered_json j;
  j["metadata"] = nlohmann::json::object();
  if (message.empty()) {
    j["status"] = "Success";
    return j.dump();
  }
  j["status"] = "Failure";
  j["message"] = message;
  if (error.empty()) {
    j["reason"] = "NonZeroExitCode";
    j["details"] = {{"causes", {{{"reason", "ExitCode"}, {"message", std::to_string(exit_code)}}}}};
  } else {
    j["reason"] = "InternalError";
    j["details"] = {{"causes", {{{"message", error}}}}};
    j["code"] = 500;
  }
  return j.dump();
}

std::vector<std::string> QueryValues(const std::string& query, const std::string& name) {
  std::vector<std::string> out;
  for (size_t pos = 0; pos < query.size();) {
    size_t amp = query.find('&', pos);
    if (amp == std::string::npos) amp = query.size();
    std::string kv = query.substr(pos, amp - pos);
    size_t eq = kv.find('=');
    if (eq != std::string::npos && kv.substr(0, eq) == name) out.push_back(kv.substr(eq + 1));
    pos = amp + 1;
  }
  return out;
}

awaitable<int> DialOffThread(const asio::any_io_executor& ex, const PortDialer& dial, uint16_t port,
                             std::string* error) {
  struct State {
    explicit State(const asio::any_io_executor& e) : done(e) {}
    Event done;
    int fd = -1;
    std::string err;
  };
  auto st = std::make_shared<State>(ex);
  std::thread([st, dial, port, ex = ex] {
    try {
      st->fd = dial(port);
    } catch (const std::exception& e) {
      st->err = e.what();
    }
    asio::post(ex, [st] { st->done.Notify(); });
  }).detach();
  co_await st->done.Wait();
  *error = st->err;
  co_return st->fd;
}

PortPipe::PortPipe(asio::any_io_executor ex, int fd, Out out, std::function<size_t()> queued,
                   Event* drained, std::shared_ptr<InputBudget> budget)
    : sock_(ex),
      out_(std::move(out)),
      queued_(std::move(queued)),
      drained_(drained),
      budget_(std::move(budget)) {
  boost::system::error_code ec;
  sock_.assign(asio::ip::tcp::v4(), fd, ec);
  sock_.set_option(asio::ip::tcp::no_delay(true), ec);
}

void PortPipe::Start() {
  asio::co_spawn(
      sock_.get_executor(), [self = shared_from_this()]() { return self->ReadLoop(); },
      asio::detached);
}

awaitable<void> PortPipe::ReadLoop() {
  std::vector<char> buf(64 * 1024);
  while (!closed_) {
    if (queued_() > (4u << 20)) {
      co_await drained_->Wait();
      continue;
    }
    boost::system::error_code ec;
    size_t n =
        co_await sock_.async_read_some(asio::buffer(buf), asio::redirect_error(use_awaitable, ec));
    if (closed_) break;
    if (n > 0) out_(std::string(buf.data(), n));
    if (ec) break;
  }
  if (!closed_) out_("");
}

void PortPipe::Input(std::string data) {
  if (eof_ || closed_ || data.empty()) return;
  budget_->Take(data.size());
  in_.push_back(std::move(data));
  if (!writing_) {
    writing_ = true;
    asio::co_spawn(
        sock_.get_executor(), [self = shared_from_this()]() { return self->WriteLoop(); },
        asio::detached);
  }
}

void PortPipe::InputEof() {
  eof_ = true;
  if (!writing_) {
    boost::system::error_code ec;
    sock_.shutdown(asio::ip::tcp::socket::shutdown_send, ec);
  }
}

awaitable<void> PortPipe::WriteLoop() {
  while (!in_.empty() && !closed_) {
    std::string d = std::move(in_.front());
    in_.pop_front();
    boost::system::error_code ec;
    co_await asio::async_write(sock_, asio::buffer(d), asio::redirect_error(use_awaitable, ec));
    budget_->Give(d.size());
    if (ec) break;
  }
  writing_ = false;
  DropInput();
  if (eof_ && !closed_) {
    boost::system::error_code ec;
    sock_.shutdown(asio::ip::tcp::socket::shutdown_send, ec);
  }
}

// Bytes that can no longer be written (the connection failed or closed) no longer count.
void PortPipe::DropInput() {
  size_t n = 0;
  for (const auto& d : in_) n += d.size();
  in_.clear();
  budget_->Give(n);
}

void PortPipe::Close() {
  closed_ = true;
  if (!writing_) DropInput();
  boost::system::error_code ec;
  sock_.close(ec);
}

}  // namespace berth::streaming
