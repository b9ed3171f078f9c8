#include "store/images.h"

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "store/db.h"

namespace berth::store {
namespace {

const std::vector<std::string> kImageMigrations = {
    "CREATE TABLE images ("
    " name TEXT PRIMARY KEY,"
    " target_digest TEXT NOT NULL,"
    " target_media_type TEXT NOT NULL,"
    " config_digest TEXT NOT NULL,"
    " chain_id TEXT NOT NULL,"
    " size INTEGER NOT NULL DEFAULT 0,"
    " labels TEXT NOT NULL DEFAULT '{}',"
    " created_unix INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX images_by_config ON images(config_digest);",
};

constexpr const char* kColumns =
    "SELECT name, target_digest, target_media_type, config_digest, chain_id, size, labels, "
    "created_unix FROM images ";

ImageRecord Row(const Statement& st) {
  ImageRecord r;
  r.name = st.Text(0);
  r.target_digest = st.Text(1);
  r.target_media_type = st.Text(2);
  r.config_digest = st.Text(3);
  r.chain_id = st.Text(4);
  r.size = st.Int(5);
  auto labels = nlohmann::json::parse(st.Text(6), nullptr, false);
  if (labels.is_object()) {
    for (auto& [k, v] : labels.items())
      if (v.is_string()) r.labels[k] = v.get<std::string>();
  }
  r.created_unix = st.Int(7);
  return r;
}

}  // namespace

ImageStore::ImageStore(std::shared_ptr<Database> db) : db_(std::move(db)) {
  db_->Migrate("images", kImageMigrations);
}

void ImageStore::Put(const ImageRecord& r) { PutAll({r}); }

void ImageStore::PutAll(const std::vector<ImageRecord>& records) {
  for (const auto& r : records)
    if (r.name.empty()) throw Error(Code::kInvalidArgument, "image record: empty name");
  Transaction tx(*db_);
  for (const auto& r : records) {
    nlohmann::json labels = nlohmann::json::object();
    for (auto& [k, v] : r.labels) labels[k] = v;
    auto st = db_->Prepare(
        "INSERT OR REPLACE INTO images(name, target_digest, target_media_type, config_digest, "
        "chain_id, size, labels, "
        "created_unix) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)");
    st.Bind(1, r.name)
        .Bind(2, r.target_digest)
        .Bind(3, r.target_media_type)
        .Bind(4, r.config_digest);
    st.Bind(5, r.chain_id).Bind(6, r.size).Bind(7, labels.dump()).Bind(8, r.created_unix);
    st.Run();
  }
  tx.Commit();
}

std::optional<ImageRecord> ImageStore::Get(const std::string& name) {
  Transaction tx(*db_);
  auto st = db_->Prepare(std::string(kColumns) + "WHERE name = ?1");
  st.Bind(1, name);
  if (!st.Step()) return std::nullopt;
  return Row(st);
}

void ImageStore::Delete(const std::string& name) {
  Transaction tx(*db_);
  auto st = db_->Prepare("DELETE FROM images WHERE name = ?1");
  st.Bind(1, name);
  if (st.Run() == 0) throw Error(Code::kNotFound, "image " + name + ": not found");
  tx.Commit();
}

std::vector<ImageRecord> ImageStore::List() {
  Transaction tx(*db_);
  auto st = db_->Prepare(std::string(kColumns) + "ORDER BY name");
  std::vector<ImageRecord> out;
  while (st.Step()) out.push_back(Row(st));
  return out;
}

std::vector<ImageRecord> ImageStore::ByConfig(const std::string& config_digest) {
  Transaction tx(*db_);
  auto st = db_->Prepare(std::string(kColumns) + "WHERE config_digest = ?1 ORDER BY name");
  st.Bind(1, config_digest);
  std::vector<ImageRecord> out;
  while (st.Step()) out.push_back(Row(st));
  return out;
}

}  // namespace berth::store
