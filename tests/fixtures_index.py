"""Shared fixtures for the index, retrieval and CLI tests: a small hand-made corpus of three gazettes
(three regions, three years, two heading styles) and one real index built over it, once per session.

The corpus is small on purpose: the embedding model is real and runs on the CPU. Topics are kept
apart (12345热线 / 森林防火戒严期 / 保障性租赁住房) so that which clause answers a question is not in doubt.

Used via ``pytest_plugins = ["fixtures_index"]`` in the test modules.
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

import pytest

from qa.config import Settings, load_settings

# 宁夏回族自治区, 2022: a 通知 issuing a 办法 cut into 第X条 under chapters.
HOTLINE_FILE = "gazette_hotline.txt"
HOTLINE = """宁夏回族自治区
人民政府公报

2022 年 第 9 期

目 录

自治区人民政府办公厅关于印发宁夏回族自治区12345政务服务便民热线运行管理办法（试行）的通知
（宁政办发〔2022〕30号）…………（2）

自治区人民政府办公厅关于印发宁夏回族自治区12345政务服务便民热线运行管理办法（试行）的通知

宁政办发〔2022〕30号

各市、县（区）人民政府，自治区政府各部门、各直属机构：

《宁夏回族自治区12345政务服务便民热线运行管理办法（试行）》已经自治区人民政府同意，现印发给你们，请认真贯彻执行。

宁夏回族自治区人民政府办公厅

2022年4月27日

宁夏回族自治区12345政务服务便民热线运行管理办法（试行）

第一章 总则

第一条 为规范12345政务服务便民热线运行管理，提升政务服务水平，根据有关规定，制定本办法。

第二条 本办法所称“12345热线”，是指各级人民政府设立的，通过电话、网站、微信等渠道受理企业和群众诉求的政务服务便民热线。

第三条 自治区人民政府办公厅是全区“12345热线”工作的主管部门，负责统筹协调、业务指导和监督考核。

第二章 工作流程

第四条 热线平台受理诉求后，能够当场答复的即时答复；不能当场答复的，应当在1个工作日内形成工单转交承办单位。

第五条 承办单位应当自收到工单之日起5个工作日内办结并答复诉求人；情况复杂的，经批准可以延长，延长期限最长不超过10个工作日。

第六条 热线平台应当对通话进行全程录音，通话录音和工单资料保存期限不少于3年。

第七条 热线工作人员应当使用文明规范用语，不得泄露诉求人的个人信息和隐私。

第八条 本办法自印发之日起施行。
"""

# 石嘴山市大武口区, 2023: a 通知 issuing a 方案 with 一、 sections. "区应急管理局" is named twice,
# each time standing as a name of its own, so the user dictionary should learn it.
FOREST_FILE = "gazette_forest.txt"
FOREST = """石嘴山市大武口区
人民政府公报

2023 年 第 2 期

目 录

大武口区人民政府办公室关于印发大武口区森林草原防灭火工作方案的通知
（石大政办发〔2023〕12号）…………（3）

大武口区人民政府办公室关于印发大武口区森林草原防灭火工作方案的通知

石大政办发〔2023〕12号

各镇人民政府、街道办事处，区直各部门：

现将《大武口区森林草原防灭火工作方案》印发给你们，请结合实际认真抓好落实。

石嘴山市大武口区人民政府办公室

2023年2月20日

大武口区森林草原防灭火工作方案

一、总体要求

坚持预防为主、积极消灭的方针，压实各级防火责任，确保不发生重大森林草原火灾。

二、森林防火戒严期

每年3月1日至5月31日为全区森林防火戒严期。戒严期内，林区禁止一切野外用火，严禁上坟烧纸、燃放烟花爆竹、烧荒烧秸秆，进入林区的车辆和人员须接受防火检查。

三、火情报告和扑救

任何单位和个人发现森林草原火情，应当立即拨打119或者森林火警电话报告，镇街接报后30分钟内组织扑救力量赶赴现场。区应急管理局、区消防救援大队接报后立即调度增援。

四、保障措施

区应急管理局、区财政局按照职责分工，组建半专业扑火队，每年开展不少于2次扑火演练，所需经费列入区级财政预算。
"""

# 银川市, 2021: 实施意见 with 一、/（一） sections. “新市民” is quoted only once (not a corpus term).
HOUSING_FILE = "gazette_housing.txt"
HOUSING = """银川市
人民政府公报

2021 年 第 11 期

目 录

银川市人民政府办公室关于加快发展保障性租赁住房的实施意见
（银政办发〔2021〕88号）…………（5）

银川市人民政府办公室关于加快发展保障性租赁住房的实施意见

银政办发〔2021〕88号

各县（市）区人民政府，市政府各部门、各直属机构：

为解决“新市民”、青年人住房困难问题，经市人民政府同意，现提出如下意见。

一、保障对象和标准

（一）保障对象。保障性租赁住房主要面向在本市无房的新市民、青年人，不设收入线门槛。

（二）建设标准。保障性租赁住房以建筑面积不超过70平方米的小户型为主，租金低于同地段同品质市场租赁住房租金。

二、支持政策

（一）土地支持。利用企事业单位自有闲置土地建设保障性租赁住房的，允许变更土地用途，不补缴土地价款。

（二）税费支持。取得保障性租赁住房项目认定书后，用水、用电、用气价格按照居民标准执行。

三、组织实施

市住房和城乡建设局负责保障性租赁住房项目认定和监督管理，各县（市）区人民政府负责本辖区项目建设。

银川市人民政府办公室

2021年9月30日
"""

# Not part of the base corpus: the index tests add it to see that only its articles are embedded.
DOGS_FILE = "dogs.txt"
DOGS = """石嘴山市惠农区城市养犬管理办法

惠政发〔2020〕5号

第一条 为规范城市养犬行为，保障市民人身安全和环境卫生，制定本办法。

第二条 养犬人应当为犬只办理养犬登记，并每年为犬只接种狂犬病疫苗。

第三条 携犬出户时，应当为犬只束犬链，由成年人牵领，并主动避让老年人和儿童。

第四条 本办法自2020年6月1日起施行。
"""

BASE_FILES = {HOTLINE_FILE: HOTLINE, FOREST_FILE: FOREST, HOUSING_FILE: HOUSING}

# Colloquial questions, the document they concern, the clause that answers them, and a gold quote.
QUESTIONS = [
    ("打了12345热线反映问题，承办部门最晚几个工作日内要给我办完？", HOTLINE_FILE, "第五条", "自收到工单之日起5个工作日内办结"),
    ("森林防火戒严期是每年几月到几月？那段时间能上坟烧纸吗？", FOREST_FILE, "二、", "每年3月1日至5月31日为全区森林防火戒严期"),
    ("保障性租赁住房的房子面积一般有多大？", HOUSING_FILE, "一、", "建筑面积不超过70平方米的小户型为主"),
]


@contextlib.contextmanager
def single_torch_thread():
    """Encode on one thread while inside. On a small CPU shared with other work, torch's default of
    one thread per core makes threads wait on each other: a single query took ~1 s on two threads
    against ~0.03 s on one on the 2-core dev machine under load. Restored on the way out, so other
    test files are not affected."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def write_corpus(folder: Path, files: dict[str, str] = BASE_FILES) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def copy_index(small_settings: Settings, target: Path) -> Settings:
    """A private copy of the session corpus and its built index, for tests that change them."""
    corpus_dir = target / "corpus"
    index_dir = target / "index"
    shutil.copytree(small_settings.corpus_dir, corpus_dir)
    shutil.copytree(small_settings.index_dir, index_dir)
    return load_settings(corpus_dir=corpus_dir, index_dir=index_dir)


@pytest.fixture(scope="session")
def small_settings(tmp_path_factory) -> Settings:
    root = tmp_path_factory.mktemp("small")
    corpus_dir = write_corpus(root / "corpus")
    return load_settings(corpus_dir=corpus_dir, index_dir=root / "index")


@pytest.fixture(scope="session")
def small_embeddings(small_settings):
    from qa.embedding import PolicyEmbeddings

    return PolicyEmbeddings(small_settings)


@pytest.fixture(scope="session")
def small_build(small_settings, small_embeddings):
    """The report of the first build of the small corpus's index (built once per session)."""
    from qa.index import build_index

    with single_torch_thread():
        return build_index(small_settings, small_embeddings, progress=False)


@pytest.fixture(scope="session")
def small_searcher(small_settings, small_embeddings, small_build):
    from qa.retrieval import HybridSearcher

    return HybridSearcher(small_settings, embeddings=small_embeddings)


@pytest.fixture(scope="module")
def one_torch_thread():
    """For a test module's own tests: ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    with single_torch_thread():
        yield
